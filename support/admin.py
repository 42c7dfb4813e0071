"""What messages wrote, shown read-only: staff change nothing here by hand; actions call services."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_display import id_link, order_links, short_code
from config.admin_readonly import ReadOnlyAdmin, ReadOnlyInline
from support.models import CustomerContact, CustomerNotification, TrackingEntry, TrackingRecord
from support.services import notifications_mail_again


class TrackingEntryInline(ReadOnlyInline):
    model = TrackingEntry
    readonly_fields = ["status", "message", "timestamp", "recorded_at"]


@admin.register(TrackingRecord)
class TrackingRecordAdmin(ReadOnlyAdmin):
    list_display = ["shipment", "order", "status", "updated_at"]
    list_display_links = ["shipment"]
    readonly_fields = ["see_also"]

    @admin.display(description="shipment", ordering="shipment_id")
    def shipment(self, record: TrackingRecord) -> str:
        return short_code(record.shipment_id)

    @admin.display(description="order", ordering="order_id")
    def order(self, record: TrackingRecord) -> str:
        return id_link("shop_order_change", record.order_id)

    @admin.display(description="see also")
    def see_also(self, record: TrackingRecord) -> str:
        return order_links(record.order_id, shipment_id=record.shipment_id, leave_out="tracking")

    list_filter = ["status"]
    search_fields = ["shipment_id", "order_id"]
    inlines = [TrackingEntryInline]


@admin.register(CustomerContact)
class CustomerContactAdmin(ReadOnlyAdmin):
    list_display = ["order_id", "name", "email", "language", "received_at"]
    list_filter = [("received_at", admin.EmptyFieldListFilter)]
    search_fields = ["order_id", "name", "email"]


@admin.register(CustomerNotification)
class CustomerNotificationAdmin(ReadOnlyAdmin):
    list_display = ["subject", "recipient", "status", "created_at", "sent_at", "send_attempts"]
    list_filter = ["status", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["order_id", "shipment_id", "recipient"]
    actions = ["mail_again"]

    @admin.action(description="Mail the selected unsent notifications again now")
    def mail_again(self, request: HttpRequest, queryset: QuerySet[CustomerNotification]) -> None:
        count = notifications_mail_again(notification_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} notification(s) are being mailed again now.", messages.SUCCESS)

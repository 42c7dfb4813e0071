from django.contrib import admin

from support.models import CustomerNotification, TrackingEntry, TrackingRecord


class TrackingEntryInline(admin.TabularInline):
    model = TrackingEntry
    extra = 0
    can_delete = False
    readonly_fields = ["status", "message", "timestamp", "recorded_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TrackingRecord)
class TrackingRecordAdmin(admin.ModelAdmin):
    list_display = ["shipment_id", "order_id", "status", "updated_at"]
    list_filter = ["status"]
    search_fields = ["shipment_id", "order_id"]
    inlines = [TrackingEntryInline]
    readonly_fields = ["shipment_id", "order_id", "status", "updated_at"]


@admin.register(CustomerNotification)
class CustomerNotificationAdmin(admin.ModelAdmin):
    list_display = ["subject", "recipient", "status", "created_at", "sent_at", "send_attempts"]
    list_filter = ["status", ("sent_at", admin.EmptyFieldListFilter)]
    search_fields = ["order_id", "shipment_id", "recipient"]
    readonly_fields = [f.name for f in CustomerNotification._meta.fields]

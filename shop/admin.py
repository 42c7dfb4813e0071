from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_display import address_text, id_link, order_links, short_code
from config.admin_readonly import ReadOnlyInline
from config.errors import DomainError
from shop.models import Customer, IdempotentRequest, Order, OrderLine, OrderStatusChange, Product
from shop.selectors import CANCEL_ORDERS_PERMISSION
from shop.services import order_cancel


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "currency", "active"]
    search_fields = ["sku", "name"]
    list_filter = ["active"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "email", "user", "created_at"]
    search_fields = ["name", "email", "user__username"]
    raw_id_fields = ["user"]


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = readonly_fields = ("sku", "name", "quantity", "unit_price", "product")


class OrderStatusChangeInline(ReadOnlyInline):
    """The order's history, as the messages wrote it."""

    model = OrderStatusChange
    fields = readonly_fields = ("status", "note", "at")


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["order", "contact_name", "status", "total", "currency", "payment_status", "shipment",
                    "delivery_status", "created_at"]
    list_display_links = ["order"]
    list_filter = ["status", "payment_status", "shipping_method", "created_at"]
    search_fields = ["id", "contact_name", "contact_email", "shipment_id"]
    inlines = [OrderLineInline, OrderStatusChangeInline]
    readonly_fields = ["payment", "address", "see_also"] + [f.name for f in Order._meta.fields]
    fields = ["id", "status", "customer", "contact_name", "contact_email", "contact_phone", "address",
              "shipping_method", "payment_method", "total", "currency", "payment", "payment_status",
              "payment_message", "payment_reference", "payment_requests", "payment_due_at", "warehouse_status",
              "warehouse_message", "shipment_id", "delivery_status", "delivery_message", "delivery_updated_at",
              "created_at", "updated_at", "see_also"]
    actions = ["cancel_orders"]

    @admin.display(description="order", ordering="id")
    def order(self, order: Order) -> str:
        return short_code(order.id)

    @admin.display(description="shipment", ordering="shipment_id")
    def shipment(self, order: Order) -> str:
        return id_link("transport_shipment_change", order.shipment_id)

    @admin.display(description="shipping address")
    def address(self, order: Order) -> str:
        return address_text(order.shipping_address)

    @admin.display(description="see also")
    def see_also(self, order: Order) -> str:
        return order_links(order.id, shipment_id=order.shipment_id, leave_out="order")

    # Orders come through the API (prices from the catalogue) and move on through messages:
    # staff change them only through the action below (a service), never by hand.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="payment (as payments told the shop)")
    def payment(self, order: Order) -> str:
        if not order.payment_status:
            return f"{order.total} {order.currency} by {order.payment_method}: no answer yet"
        parts = [f"{order.total} {order.currency} by {order.payment_method}: {order.payment_status}"]
        if order.payment_reference:
            parts.append(f"reference {order.payment_reference}")
        if order.payment_message:
            parts.append(order.payment_message)
        return "; ".join(parts)

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_ORDERS_PERMISSION)

    @admin.action(description="Cancel for the customer (before picking starts)", permissions=["cancel"])
    def cancel_orders(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Staff cancel for the customer: the same service, the same rules (and compensation)."""
        cancelled, refused = 0, []
        for order_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                order_cancel(user=request.user, order_id=order_id)  # type: ignore[arg-type]  # staff, signed in
            except DomainError as exc:
                refused.append(f"{order_id}: {exc.message}")
            else:
                cancelled += 1
        if cancelled:
            self.message_user(request, f"{cancelled} order(s) cancelled.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, f"Not cancelled: {reason}", messages.WARNING)


@admin.register(IdempotentRequest)
class IdempotentRequestAdmin(admin.ModelAdmin):
    """The first answers kept for Idempotency-Keys (24 hours): for looking into a client's retries."""

    list_display = ["key", "user", "response_status", "created_at"]
    search_fields = ["key", "user__username"]
    list_filter = ["response_status"]
    readonly_fields = ["user", "key", "fingerprint", "response_status", "response_body", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

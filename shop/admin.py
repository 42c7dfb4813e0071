from django.contrib import admin

from payments.selectors import payment_for_order
from shop.models import Customer, Order, OrderLine, OrderStatusChange, Product


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


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ["sku", "name", "quantity", "unit_price", "product"]

    def has_add_permission(self, request, obj=None):
        return False


class OrderStatusChangeInline(admin.TabularInline):
    model = OrderStatusChange
    extra = 0
    can_delete = False
    readonly_fields = ["status", "note", "at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "contact_name", "status", "total", "currency", "shipment_id", "delivery_status", "created_at"]
    list_filter = ["status", "shipping_method", "created_at"]
    search_fields = ["id", "contact_name", "contact_email", "shipment_id"]
    inlines = [OrderLineInline, OrderStatusChangeInline]
    readonly_fields = ["payment"] + [f.name for f in Order._meta.fields]

    @admin.display(description="payment (payments app)")
    def payment(self, order: Order) -> str:
        payment = payment_for_order(order_id=order.id)
        if payment is None:
            return "none yet"
        parts = [f"{payment.amount} {payment.currency} by {payment.method}: {payment.get_status_display()}"]
        if payment.provider_reference:
            parts.append(f"reference {payment.provider_reference}")
        if payment.refund_reference:
            parts.append(f"refund {payment.refund_reference}")
        if payment.reason:
            parts.append(payment.reason)
        return "; ".join(parts)

    def has_add_permission(self, request):
        return False  # orders come through the API, where prices come from the catalogue

    def has_delete_permission(self, request, obj=None):
        return False

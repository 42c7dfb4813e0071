from django.contrib import admin
from django.http import HttpRequest

from config.admin_display import id_link
from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Payments are written by messages only: shown, never added, edited or deleted by hand."""

    list_display = ["order", "amount", "currency", "method", "status", "provider_reference", "attempts",
                    "created_at", "captured_at", "refunded_at"]
    list_filter = ["status", "method"]
    search_fields = ["order_id", "provider_reference", "refund_reference"]
    readonly_fields = [f.name for f in Payment._meta.fields]

    @admin.display(description="order", ordering="order_id")
    def order(self, payment: Payment) -> str:
        return id_link("shop_order_change", payment.order_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False

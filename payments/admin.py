from django.contrib import admin

from config.admin_display import id_link
from config.admin_readonly import ReadOnlyAdmin
from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Payments are written by messages only: shown, never added, edited or deleted by hand."""

    list_display = ["order", "amount", "currency", "method", "status", "provider_reference", "attempts",
                    "created_at", "captured_at", "refunded_at"]
    list_filter = ["status", "method"]
    search_fields = ["order_id", "provider_reference", "refund_reference"]

    @admin.display(description="order", ordering="order_id")
    def order(self, payment: Payment) -> str:
        return id_link("shop_order_change", payment.order_id)

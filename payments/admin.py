from django.contrib import admin

from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ["order_id", "amount", "currency", "method", "status", "provider_reference", "attempts",
                    "created_at", "captured_at", "refunded_at"]
    list_filter = ["status", "method"]
    search_fields = ["order_id", "provider_reference", "refund_reference"]
    readonly_fields = [f.name for f in Payment._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

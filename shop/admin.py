from django.contrib import admin

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
    readonly_fields = [f.name for f in Order._meta.fields]

    def has_add_permission(self, request):
        return False  # orders come through the API, where prices come from the catalogue

    def has_delete_permission(self, request, obj=None):
        return False

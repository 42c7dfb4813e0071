from django.contrib import admin

from transport.models import Shipment, TrackingEvent, Vehicle


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ["code", "type", "status", "location", "updated_at"]
    list_filter = ["status", "type"]
    search_fields = ["code"]


class TrackingEventInline(admin.TabularInline):
    model = TrackingEvent
    extra = 0
    can_delete = False
    readonly_fields = ["status", "message", "vehicle_code", "timestamp"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["id", "order_id", "status", "vehicle", "created_at", "delivered_at"]
    list_filter = ["status", "vehicle"]
    search_fields = ["id", "order_id"]
    inlines = [TrackingEventInline]
    readonly_fields = [f.name for f in Shipment._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TrackingEvent)
class TrackingEventAdmin(admin.ModelAdmin):
    list_display = ["shipment", "status", "message", "vehicle_code", "timestamp"]
    list_filter = ["status"]
    search_fields = ["shipment__id"]
    readonly_fields = ["shipment", "status", "message", "vehicle_code", "timestamp"]

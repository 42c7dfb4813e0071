from django.contrib import admin, messages

from transport.models import NEXT_STAGE, Shipment, ShipmentStatus, TrackingEvent, Vehicle
from transport.selectors import vehicle_counts
from transport.services import shipment_advance, vehicles_dispatch


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ["code", "type", "status", "location", "updated_at"]
    list_filter = ["status", "type"]
    search_fields = ["code"]
    actions = ["dispatch_free_vehicles"]

    @admin.action(description="Dispatch free vehicles to waiting shipments", permissions=["change"])
    def dispatch_free_vehicles(self, request, queryset):
        """The dispatcher's command. It gives every available vehicle to the longest-waiting
        shipments, whichever vehicles are selected (the admin needs a selection to run an action)."""
        assigned = vehicles_dispatch()
        free = vehicle_counts().get(Vehicle.Status.AVAILABLE, 0)
        waiting = Shipment.objects.filter(status=ShipmentStatus.AWAITING_VEHICLE).count()
        left = f"now {_count(free, 'free vehicle')}, {_count(waiting, 'shipment')} waiting"
        if assigned:
            self.message_user(request, f"{_count(assigned, 'vehicle')} dispatched to waiting shipments ({left}).",
                              messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing to dispatch ({left}).", messages.WARNING)


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
    actions = ["record_next_stage"]

    def has_add_permission(self, request):
        return False

    def has_record_stage_permission(self, request) -> bool:
        return request.user.has_perm("transport.record_shipment_stage") or self.has_change_permission(request)

    @admin.action(description="Record the next stage", permissions=["record_stage"])
    def record_next_stage(self, request, queryset):
        """A dispatcher records, for each selected shipment, the stage that follows its current one.
        The status read here picks the stage; shipment_advance checks it again under the row lock."""
        advanced, skipped = 0, []
        for shipment_id, status in queryset.order_by("pk").values_list("id", "status"):
            to_status = NEXT_STAGE.get(status)
            if to_status is None:  # waiting for a vehicle, or delivered
                skipped.append(status)
                continue
            shipment = shipment_advance(shipment_id=shipment_id, to_status=to_status)
            if shipment is not None and shipment.status == to_status:
                advanced += 1
            else:
                skipped.append(status)
        if advanced:
            self.message_user(request, f"{_count(advanced, 'shipment')} moved to the next stage.",
                              messages.SUCCESS)
        if skipped:
            by_status = ", ".join(f"{skipped.count(s)} {s}" for s in sorted(set(skipped)))
            self.message_user(request, f"{_count(len(skipped), 'shipment')} without a next stage to record, "
                              f"left as they were ({by_status}).", messages.WARNING)


@admin.register(TrackingEvent)
class TrackingEventAdmin(admin.ModelAdmin):
    list_display = ["shipment", "status", "message", "vehicle_code", "timestamp"]
    list_filter = ["status"]
    search_fields = ["shipment__id"]
    readonly_fields = ["shipment", "status", "message", "vehicle_code", "timestamp"]

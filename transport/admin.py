from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_display import address_text, id_link, order_links, short_code
from config.admin_readonly import ReadOnlyAdmin, ReadOnlyInline, count_noun
from transport.models import NEXT_STAGE, Driver, Shipment, TrackingEvent, Vehicle
from transport.selectors import shipments_waiting_count, vehicle_counts
from transport.services import driver_assign, shipment_advance, vehicles_dispatch


class DriverInline(ReadOnlyInline):
    """Who drives the vehicle (change the assignment on the driver's own page)."""

    model = Driver
    fields = readonly_fields = ("user", "created_at")


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    """Drivers and the vehicle each drives; ``manage.py create_driver`` makes them. Changing the
    vehicle moves the driver: from then on they record that vehicle's shipments only."""

    list_display = ["user", "vehicle", "created_at"]
    list_filter = ["vehicle"]
    search_fields = ["user__username", "vehicle__code"]
    fields = ["user", "vehicle", "created_at"]
    readonly_fields = ["user", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False  # a driver is an account with a token: manage.py create_driver

    def save_model(self, request: HttpRequest, obj: Driver, form, change: bool) -> None:
        driver_assign(driver=obj, vehicle=form.cleaned_data["vehicle"])


@admin.register(Vehicle)
class VehicleAdmin(admin.ModelAdmin):
    list_display = ["code", "type", "status", "location", "drivers", "updated_at"]
    list_filter = ["status", "type"]
    search_fields = ["code"]
    inlines = [DriverInline]
    actions = ["dispatch_free_vehicles"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Vehicle]:
        return super().get_queryset(request).prefetch_related("drivers__user")

    @admin.display(description="drivers")
    def drivers(self, vehicle: Vehicle) -> str:
        return ", ".join(driver.user.get_username() for driver in vehicle.drivers.all()) or "-"

    @admin.action(description="Dispatch free vehicles to waiting shipments", permissions=["change"])
    def dispatch_free_vehicles(self, request: HttpRequest, queryset: QuerySet[Vehicle]) -> None:
        """The dispatcher's command. It gives every available vehicle to the longest-waiting
        shipments, whichever vehicles are selected (the admin needs a selection to run an action)."""
        assigned = vehicles_dispatch()
        free = vehicle_counts().get(Vehicle.Status.AVAILABLE, 0)
        waiting = shipments_waiting_count()
        left = f"now {count_noun(free, 'free vehicle')}, {count_noun(waiting, 'shipment')} waiting"
        if assigned:
            self.message_user(request, f"{count_noun(assigned, 'vehicle')} dispatched to waiting shipments ({left}).",
                              messages.SUCCESS)
        else:
            self.message_user(request, f"Nothing to dispatch ({left}).", messages.WARNING)


class TrackingEventInline(ReadOnlyInline):
    model = TrackingEvent
    readonly_fields = ["status", "message", "vehicle_code", "timestamp"]


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ["shipment", "order", "status", "carried_by", "city", "created_at", "delivered_at"]
    list_display_links = ["shipment"]
    list_filter = ["status", "vehicle"]
    search_fields = ["id", "order_id"]
    list_select_related = ["vehicle"]
    inlines = [TrackingEventInline]
    readonly_fields = ["order_full", "carried_by", "address", "see_also"] + [f.name for f in Shipment._meta.fields]
    fields = ["id", "order_full", "status", "recipient", "address", "shipping_method", "carried_by", "created_at",
              "updated_at", "delivered_at", "see_also"]
    actions = ["record_next_stage"]

    @admin.display(description="shipment", ordering="id")
    def shipment(self, shipment: Shipment) -> str:
        return short_code(shipment.id)

    @admin.display(description="order", ordering="order_id")
    def order(self, shipment: Shipment) -> str:
        return id_link("shop_order_change", shipment.order_id)

    @admin.display(description="order")
    def order_full(self, shipment: Shipment) -> str:
        return id_link("shop_order_change", shipment.order_id, short=False)

    # the vehicle that carries it, not the vehicle's present state (busy with another load, say)
    @admin.display(description="vehicle", ordering="vehicle__code")
    def carried_by(self, shipment: Shipment) -> str:
        return f"{shipment.vehicle.code} ({shipment.vehicle.type})" if shipment.vehicle else "— (waiting for one)"

    @admin.display(description="to")
    def city(self, shipment: Shipment) -> str:
        return (shipment.shipping_address or {}).get("city") or "—"

    @admin.display(description="address")
    def address(self, shipment: Shipment) -> str:
        return address_text(shipment.shipping_address)

    @admin.display(description="see also")
    def see_also(self, shipment: Shipment) -> str:
        return order_links(shipment.order_id, shipment_id=shipment.id, leave_out="shipment")

    # Shipments are made by messages and moved on by the action below (a service); deleting one
    # would strand its vehicle.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_record_stage_permission(self, request) -> bool:
        return request.user.has_perm("transport.record_shipment_stage") or self.has_change_permission(request)

    @admin.action(description="Record the next stage", permissions=["record_stage"])
    def record_next_stage(self, request: HttpRequest, queryset: QuerySet[Shipment]) -> None:
        """A dispatcher records, for each selected shipment, the stage that follows its current one.
        The status read here picks the stage; shipment_advance checks it again under the row lock."""
        advanced, skipped = [], []
        for shipment_id, status in queryset.order_by("pk").values_list("id", "status"):
            to_status = NEXT_STAGE.get(status)
            if to_status is None:  # waiting for a vehicle, or delivered
                skipped.append(status)
                continue
            shipment = shipment_advance(shipment_id=shipment_id, to_status=to_status)
            if shipment is not None and shipment.status == to_status:
                advanced.append(to_status)
            else:
                skipped.append(status)
        if advanced:
            stages = ", ".join(f"{advanced.count(s)} to {s}" for s in sorted(set(advanced)))
            self.message_user(request, f"{count_noun(len(advanced), 'shipment')} moved to the next stage ({stages}).",
                              messages.SUCCESS)
        if skipped:
            by_status = ", ".join(f"{skipped.count(s)} {s}" for s in sorted(set(skipped)))
            self.message_user(request, f"{count_noun(len(skipped), 'shipment')} without a next stage to record, "
                              f"left as they were ({by_status}).", messages.WARNING)


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyAdmin):
    """What the stages wrote, for inspection: no tracking event is added, edited or deleted by
    hand (a stage is recorded through the shipments' action, or by a driver)."""

    list_display = ["shipment_link", "status", "message", "vehicle_code", "timestamp"]
    list_filter = ["status"]
    search_fields = ["shipment__id"]

    @admin.display(description="shipment", ordering="shipment_id")
    def shipment_link(self, event: TrackingEvent) -> str:
        return id_link("transport_shipment_change", event.shipment_id)

"""Transport writes: shipments, vehicle assignment and the delivery lifecycle.

A shipment moves forward only, one stage at a time (``contracts.stages``): awaiting_vehicle ->
vehicle_assigned -> picked_up -> in_transit -> out_for_delivery -> delivered. Each stage is
recorded once, as a tracking event and a ``shipment.status_changed``; a repeated, late or
out-of-order command changes nothing and emits nothing.

Locks (``transport.locks``): the fleet first, then shipments. Each service owns its
transaction; called from a message handler it joins the handler's transaction without a
savepoint of its own (``savepoint=False``): the handler never carries on after an error.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.utils import timezone

from accounts.services import account_username_check, api_token_issue
from config.errors import DomainError
from contracts.messages import ShipmentStatusChanged
from contracts.stages import ShipmentStage
from messaging.outbox import outbox_publish
from transport.locks import fleet_for_update, shipment_for_update, shipment_waiting_for_update
from transport.models import NEXT_STAGE, RECORD_STAGE_CODENAME, Driver, Shipment, ShipmentStatus, TrackingEvent, Vehicle

PRODUCER = "transport"


def _stage_message(shipment: Shipment, status: str) -> str:
    code = shipment.vehicle.code if shipment.vehicle else ""
    city = (shipment.shipping_address or {}).get("city") or "the destination"
    return {
        ShipmentStatus.AWAITING_VEHICLE: "Shipment registered; waiting for a free vehicle",
        ShipmentStatus.VEHICLE_ASSIGNED: f"Vehicle {code} assigned",
        ShipmentStatus.PICKED_UP: f"Picked up from the warehouse by {code}",
        ShipmentStatus.IN_TRANSIT: f"In transit to {city}",
        ShipmentStatus.OUT_FOR_DELIVERY: f"Out for delivery in {city}",
        ShipmentStatus.DELIVERED: "Delivered",
    }[ShipmentStatus(status)]


def _shipment_stage_announce(shipment: Shipment) -> None:
    """Record the tracking event of the shipment's current stage and announce it
    (``shipment.status_changed``: customer service, and whoever drives the shipment).
    Caller holds the shipment's row lock, or has just created it."""
    now = timezone.now()
    code = shipment.vehicle.code if shipment.vehicle else ""
    message = _stage_message(shipment, shipment.status)
    TrackingEvent.objects.create(shipment=shipment, status=shipment.status, message=message, vehicle_code=code,
                                 timestamp=now)
    outbox_publish(
        ShipmentStatusChanged(order_id=shipment.order_id, shipment_id=shipment.id,
                              status=cast(ShipmentStage, shipment.status),  # a ShipmentStatus choice: the same values
                              message=message, vehicle_id=code or None, timestamp=now),
        correlation_id=shipment.order_id, producer=PRODUCER,
    )


def _shipment_stage_record(shipment: Shipment, status: str) -> None:
    """Move the shipment to ``status`` and announce it. Caller holds the shipment's row lock."""
    shipment.status = status
    fields = ["status", "vehicle", "updated_at"]
    if status == ShipmentStatus.DELIVERED:
        shipment.delivered_at = timezone.now()
        fields.append("delivered_at")
    shipment.save(update_fields=fields)
    _shipment_stage_announce(shipment)


def _shipment_vehicle_assign(shipment: Shipment, vehicle: Vehicle) -> None:
    """Give the vehicle to the shipment. Caller holds the fleet lock and the shipment's row lock."""
    vehicle.status = Vehicle.Status.BUSY
    vehicle.save(update_fields=["status", "location", "updated_at"])
    shipment.vehicle = vehicle
    _shipment_stage_record(shipment, ShipmentStatus.VEHICLE_ASSIGNED)


@transaction.atomic(savepoint=False)
def shipment_create(
    *, order_id: UUID, recipient: str, shipping_address: dict[str, Any], shipping_method: str
) -> Shipment:
    """A shipment for a picked order, with the first free vehicle or a place in line.

    An order shipped before (a repeated request) gets its shipment back, unchanged.
    """
    shipped = Shipment.objects.filter(order_id=order_id).select_related("vehicle").first()
    if shipped is not None:
        return shipped
    free = next((v for v in fleet_for_update() if v.status == Vehicle.Status.AVAILABLE), None)
    if free is not None:
        free.status = Vehicle.Status.BUSY
        free.save(update_fields=["status", "updated_at"])
    shipment = Shipment.objects.create(
        order_id=order_id, recipient=recipient, shipping_address=shipping_address, shipping_method=shipping_method,
        vehicle=free, status=ShipmentStatus.AWAITING_VEHICLE if free is None else ShipmentStatus.VEHICLE_ASSIGNED,
    )
    _shipment_stage_announce(shipment)
    return shipment


@transaction.atomic(savepoint=False)
def shipment_advance(*, shipment_id: str, to_status: str, vehicle_id: int | None = None) -> Shipment | None:
    """A driver or dispatcher says the shipment reached ``to_status``, the stage after its
    current one (picked up, in transit, out for delivery, delivered); on delivery its vehicle
    goes to the next waiting shipment, or back to the pool.

    A repeated, late or out-of-order stage, or any stage for a shipment still awaiting a
    vehicle, changes nothing. Returns the shipment as it stands (None if there is none, or
    with ``vehicle_id`` -- a driver's -- none on that vehicle).
    """
    if to_status == ShipmentStatus.DELIVERED:
        list(fleet_for_update())  # delivery frees a vehicle: the fleet before the shipment
    shipment = shipment_for_update(shipment_id)
    if shipment is not None and vehicle_id is not None and shipment.vehicle_id != vehicle_id:
        return None
    if shipment is None or NEXT_STAGE.get(shipment.status) != to_status:
        return shipment
    _shipment_stage_record(shipment, to_status)
    if to_status == ShipmentStatus.DELIVERED and shipment.vehicle is not None:  # it has one past awaiting_vehicle
        vehicle_release(vehicle=shipment.vehicle, location=shipment.shipping_address.get("city") or "")
    return shipment


def vehicle_release(*, vehicle: Vehicle, location: str = "") -> None:
    """The vehicle is free (at ``location``): give it to the longest-waiting shipment, or mark
    it available. Caller holds the fleet lock, in its transaction."""
    if location:
        vehicle.location = location[:100]
    waiting = shipment_waiting_for_update()
    if waiting is None:
        vehicle.status = Vehicle.Status.AVAILABLE
        vehicle.save(update_fields=["status", "location", "updated_at"])
    else:
        _shipment_vehicle_assign(waiting, vehicle)


@transaction.atomic(savepoint=False)
def vehicles_dispatch() -> int:
    """Give every available vehicle to the longest-waiting shipments (the dispatcher's command;
    with no vehicle free or no shipment waiting it changes nothing). Returns how many were assigned."""
    assigned = 0
    for vehicle in [v for v in fleet_for_update() if v.status == Vehicle.Status.AVAILABLE]:
        waiting = shipment_waiting_for_update()
        if waiting is None:
            break
        _shipment_vehicle_assign(waiting, vehicle)
        assigned += 1
    return assigned


def fleet_release_all() -> int:
    """Mark every busy vehicle available: the shipments they served were abandoned (the demo
    starts over). Returns how many were freed."""
    return Vehicle.objects.filter(status=Vehicle.Status.BUSY).update(status=Vehicle.Status.AVAILABLE,
                                                                    updated_at=timezone.now())


def vehicle_upsert(*, code: str, type: str, location: str) -> Vehicle:
    """A vehicle of the fleet (demo data): created, or its type and location updated while it is free."""
    vehicle, created = Vehicle.objects.get_or_create(code=code, defaults={"type": type, "location": location})
    changed = (vehicle.type, vehicle.location) != (type, location)
    if not created and changed and vehicle.status == Vehicle.Status.AVAILABLE:
        vehicle.type, vehicle.location = type, location
        vehicle.save(update_fields=["type", "location", "updated_at"])
    return vehicle


@transaction.atomic
def driver_create(*, username: str, vehicle_code: str) -> tuple[Driver, str]:
    """A driver account bound to the vehicle with ``vehicle_code``, allowed to record stages
    (``transport.record_shipment_stage``) for that vehicle's shipments. Returns (driver, API
    token). DomainError for a username the admin would refuse or an unknown vehicle."""
    vehicle = Vehicle.objects.filter(code=vehicle_code).first()
    if vehicle is None:
        known = ", ".join(Vehicle.objects.order_by("code").values_list("code", flat=True)) or "none yet"
        raise DomainError(f"no vehicle {vehicle_code!r} (known: {known})", field="vehicle")
    User = get_user_model()
    user = User(username=account_username_check(username))
    user.set_unusable_password()
    user.save()
    user.user_permissions.add(Permission.objects.get(content_type__app_label="transport",
                                                     codename=RECORD_STAGE_CODENAME))
    driver = Driver.objects.create(user=user, vehicle=vehicle)
    return driver, api_token_issue(user=user)


def driver_assign(*, driver: Driver, vehicle: Vehicle) -> Driver:
    """Move a driver to another vehicle (the admin): from now on they record its shipments'
    stages, no longer the old one's."""
    driver.vehicle = vehicle
    driver.save(update_fields=["vehicle"])
    return driver

"""Transport writes: shipments, vehicle assignment and the delivery lifecycle.

Vehicle assignment takes the fleet lock (every vehicle row, in primary-key order) both when
a shipment arrives and when a vehicle is released, so a shipment can never miss a vehicle
released at the same moment, and no vehicle is given to two shipments.
"""

from __future__ import annotations

from uuid import UUID

from django.utils import timezone

from config.rows import row_insert, row_lock, row_update, row_values, rows_lock_all
from config.transactions import service_transaction
from messaging.outbox import outbox_publish
from transport.models import (
    NEXT_STAGE,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
    Vehicle,
)

PRODUCER = "transport"


def fleet_lock() -> list[Vehicle]:
    return rows_lock_all(Vehicle)


def _vehicle_code(shipment: Shipment) -> str:
    """The code of the shipment's vehicle ("" for none), read by id: the shipment is all a stage loads."""
    if shipment.vehicle_id is None:
        return ""
    if Shipment.vehicle.is_cached(shipment):
        return shipment.vehicle.code
    return row_values(Vehicle, ("code",), pk=shipment.vehicle_id)[0]


def _stage_message(shipment: Shipment, status: str, code: str) -> str:
    city = (shipment.shipping_address or {}).get("city") or "the destination"
    return {
        ShipmentStatus.AWAITING_VEHICLE: "Shipment registered; waiting for a free vehicle",
        ShipmentStatus.VEHICLE_ASSIGNED: f"Vehicle {code} assigned",
        ShipmentStatus.PICKED_UP: f"Picked up from the warehouse by {code}",
        ShipmentStatus.IN_TRANSIT: f"In transit to {city}",
        ShipmentStatus.OUT_FOR_DELIVERY: f"Out for delivery in {city}",
        ShipmentStatus.DELIVERED: "Delivered",
    }[status]


def _shipment_record_stage(shipment: Shipment, status: str) -> None:
    """Move the shipment to ``status`` and announce it. Caller holds the shipment's row lock."""
    shipment.status = status
    fields = ["status", "vehicle", "updated_at"]
    if status == ShipmentStatus.DELIVERED:
        shipment.delivered_at = timezone.now()
        fields.append("delivered_at")
    row_update(shipment, fields)
    _shipment_stage_announce(shipment)


def _shipment_stage_announce(shipment: Shipment) -> None:
    """Record the tracking event of the shipment's current stage and announce it
    (``shipment.status_changed``: customer service, and whoever drives the shipment)."""
    status = shipment.status
    now = timezone.now()
    code = _vehicle_code(shipment)
    message = _stage_message(shipment, status, code)
    row_insert(TrackingEvent(
        shipment=shipment, status=status, message=message,
        vehicle_code=code, timestamp=now,
    ))
    outbox_publish(
        type="shipment.status_changed", correlation_id=shipment.order_id, producer=PRODUCER,
        payload={
            "order_id": str(shipment.order_id),
            "shipment_id": shipment.id,
            "status": status,
            "message": message,
            "vehicle_id": code or None,
            "timestamp": now.isoformat(),
        },
    )


def _vehicle_take(vehicle: Vehicle) -> None:
    """Caller holds the fleet lock."""
    vehicle.status = Vehicle.Status.BUSY
    row_update(vehicle, ["status", "updated_at"])


def _vehicle_assign(shipment: Shipment, vehicle: Vehicle) -> None:
    """Caller holds the fleet lock and the shipment's row lock."""
    _vehicle_take(vehicle)
    shipment.vehicle = vehicle
    _shipment_record_stage(shipment, ShipmentStatus.VEHICLE_ASSIGNED)


@service_transaction
def shipment_create(
    *, order_id: UUID, recipient: str, shipping_address: dict, shipping_method: str
) -> Shipment:
    """A shipment for a picked order, with the first free vehicle or a place in line. Idempotent."""
    if row_values(Shipment, ("id",), order_id=order_id) is not None:  # asked before: shipped before
        return Shipment.objects.get(order_id=order_id)
    fleet = fleet_lock()
    free = next((v for v in fleet if v.status == Vehicle.Status.AVAILABLE), None)
    if free is not None:
        _vehicle_take(free)
    shipment = row_insert(Shipment(
        order_id=order_id, recipient=recipient, shipping_address=shipping_address, shipping_method=shipping_method,
        vehicle=free, status=ShipmentStatus.AWAITING_VEHICLE if free is None else ShipmentStatus.VEHICLE_ASSIGNED,
    ))
    _shipment_stage_announce(shipment)
    return shipment


@service_transaction
def shipment_advance(*, shipment_id: str, to_status: str) -> Shipment | None:
    """A driver or dispatcher says the shipment reached its next stage (picked up, in transit,
    out for delivery, delivered). A repeated, late or out-of-order command changes nothing;
    returns the shipment (None if there is none)."""
    shipment = row_lock(Shipment, pk=shipment_id)
    if shipment is None or NEXT_STAGE.get(shipment.status) != to_status:
        return shipment
    _shipment_record_stage(shipment, to_status)
    if to_status == ShipmentStatus.DELIVERED:
        vehicle_release(vehicle_id=shipment.vehicle_id, location=shipment.shipping_address.get("city") or "")
    return shipment


def vehicle_release(*, vehicle_id: int, location: str = "") -> None:
    """The vehicle is free: give it to the longest-waiting shipment, or mark it available.

    Runs inside the caller's transaction.
    """
    fleet = {v.pk: v for v in fleet_lock()}
    vehicle = fleet[vehicle_id]
    if location:
        vehicle.location = location[:100]
    waiting = row_lock(Shipment, status=ShipmentStatus.AWAITING_VEHICLE, order_by=("created_at", "pk"))
    if waiting is None:
        vehicle.status = Vehicle.Status.AVAILABLE
        row_update(vehicle, ["status", "location", "updated_at"])
        return
    row_update(vehicle, ["location", "updated_at"])
    _vehicle_assign(waiting, vehicle)


def fleet_release_all() -> int:
    """Mark every busy vehicle available: the shipments they served were abandoned (the demo
    starts over). Returns how many were freed."""
    return Vehicle.objects.filter(status=Vehicle.Status.BUSY).update(status=Vehicle.Status.AVAILABLE)


def vehicle_upsert(*, code: str, type: str, location: str) -> Vehicle:
    vehicle, created = Vehicle.objects.get_or_create(code=code, defaults={"type": type, "location": location})
    if not created and (vehicle.type, vehicle.location) != (type, location) and vehicle.status == Vehicle.Status.AVAILABLE:
        vehicle.type, vehicle.location = type, location
        vehicle.save(update_fields=["type", "location", "updated_at"])
    return vehicle


@service_transaction
def vehicles_dispatch() -> int:
    """Give every available vehicle to the longest-waiting shipments. Returns how many were assigned."""
    free = [v for v in fleet_lock() if v.status == Vehicle.Status.AVAILABLE]
    waiting = list(
        Shipment.objects.select_for_update().filter(status=ShipmentStatus.AWAITING_VEHICLE)
        .order_by("created_at", "pk")[: len(free)]
    )
    for shipment, vehicle in zip(waiting, free):
        _vehicle_assign(shipment, vehicle)
    return min(len(waiting), len(free))

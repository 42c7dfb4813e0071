"""Every row lock transport takes, in one place.

The order every caller keeps: the fleet first, then shipments. Vehicle assignment takes the
fleet lock (every vehicle row, in primary-key order) both when a shipment arrives and when a
vehicle is released, so a shipment can never miss a vehicle released at the same moment, and
no vehicle is given to two shipments.
"""

from __future__ import annotations

from django.db.models import QuerySet

from transport.models import Shipment, ShipmentStatus, Vehicle


def fleet_for_update() -> QuerySet[Vehicle]:
    """Every vehicle, locked in primary-key order (the fleet is a handful of rows)."""
    return Vehicle.objects.order_by("pk").select_for_update()


def shipment_for_update(shipment_id: str) -> Shipment | None:
    """The shipment, locked, with its vehicle read alongside (not locked: that is the fleet
    lock's business). None when there is no such shipment."""
    return (
        Shipment.objects.filter(pk=shipment_id).select_related("vehicle").select_for_update(of=("self",)).first()
    )


def shipment_waiting_for_update() -> Shipment | None:
    """The shipment that has waited longest for a vehicle, locked; None when none waits.
    Caller holds the fleet lock (shipments start and stop waiting only under it)."""
    return (
        Shipment.objects.filter(status=ShipmentStatus.AWAITING_VEHICLE)
        .order_by("created_at", "pk").select_for_update().first()
    )

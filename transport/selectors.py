
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db.models import Count

from transport.models import Driver, Shipment, ShipmentStatus, Vehicle


def vehicle_counts() -> dict[str, int]:
    return dict(Vehicle.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def shipments_waiting_count() -> int:
    return Shipment.objects.filter(status=ShipmentStatus.AWAITING_VEHICLE).count()


def shipment_status_get(*, shipment_id: str, vehicle_id: int | None = None) -> str | None:
    """The shipment's current status; None when there is no such shipment (or, with
    ``vehicle_id``, none on that vehicle)."""
    shipments = Shipment.objects.filter(pk=shipment_id)
    if vehicle_id is not None:
        shipments = shipments.filter(vehicle_id=vehicle_id)
    return shipments.values_list("status", flat=True).first()


def driver_vehicle_id(*, user: AbstractBaseUser | AnonymousUser) -> int | None:
    """The id of the vehicle ``user`` drives; None when they are no driver."""
    if not user.is_authenticated:
        return None
    return Driver.objects.filter(user_id=user.pk).values_list("vehicle_id", flat=True).first()

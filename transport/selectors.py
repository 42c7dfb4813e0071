from uuid import UUID

from django.db.models import Count, QuerySet

from transport.models import Shipment, ShipmentStatus, Vehicle


def vehicle_list() -> QuerySet[Vehicle]:
    return Vehicle.objects.order_by("code")


def vehicle_counts() -> dict[str, int]:
    return dict(Vehicle.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def shipments_waiting_count() -> int:
    return Shipment.objects.filter(status=ShipmentStatus.AWAITING_VEHICLE).count()


def shipment_get_for_order(*, order_id: UUID) -> Shipment | None:
    return Shipment.objects.filter(order_id=order_id).select_related("vehicle").first()


def shipment_status_get(*, shipment_id: str) -> str | None:
    """The shipment's current status; None when there is no such shipment."""
    return Shipment.objects.filter(pk=shipment_id).values_list("status", flat=True).first()

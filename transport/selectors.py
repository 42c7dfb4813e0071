from django.db.models import Count, QuerySet

from transport.models import Shipment, Vehicle


def vehicle_list() -> QuerySet[Vehicle]:
    return Vehicle.objects.order_by("code")


def vehicle_counts() -> dict[str, int]:
    return dict(Vehicle.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def shipment_get_for_order(*, order_id) -> Shipment | None:
    return Shipment.objects.filter(order_id=order_id).select_related("vehicle").first()

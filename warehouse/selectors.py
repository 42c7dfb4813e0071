from collections.abc import Iterable
from uuid import UUID

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from warehouse.models import Reservation, StockItem


def stock_list() -> QuerySet[StockItem]:
    return StockItem.objects.order_by("sku")


# The reservations whose units are set aside and not yet handed to transport.
HELD = (Reservation.Status.RESERVED, Reservation.Status.PICKING)


def stock_with_holds() -> QuerySet[StockItem]:
    """Every stock item by sku, with ``held``: the units reserved for orders and not yet picked
    (``quantity_on_hand`` is what is left to sell)."""
    held = Sum("reservation_lines__quantity", filter=Q(reservation_lines__reservation__status__in=HELD))
    return StockItem.objects.annotate(held=Coalesce(held, 0)).order_by("sku")


def reservation_get(*, order_id: UUID) -> Reservation | None:
    return Reservation.objects.filter(order_id=order_id).prefetch_related("lines__stock_item").first()


def stock_on_hand(*, skus: Iterable[str]) -> dict[str, int]:
    """{sku: units on hand} for these skus (a sku the warehouse does not stock is left out)."""
    return dict(StockItem.objects.filter(sku__in=list(skus)).values_list("sku", "quantity_on_hand"))


def skus_in_stock() -> QuerySet:
    """The skus with at least one unit on hand (a subquery for other reads)."""
    return StockItem.objects.filter(quantity_on_hand__gt=0).values("sku")

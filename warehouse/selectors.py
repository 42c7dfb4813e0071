from collections.abc import Iterable
from uuid import UUID

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from warehouse.models import Reservation, StockItem

# The reservations whose units are set aside and not yet handed to transport.
HELD = (Reservation.Status.RESERVED, Reservation.Status.PICKING)


def stock_with_holds() -> QuerySet[StockItem]:
    """Every stock item by sku, with ``held``: the units reserved for orders and not yet picked
    (``quantity_on_hand`` is what is left to sell), and ``on_hand``: the two together, what
    stands on the shelf."""
    held = Sum("reservation_lines__quantity", filter=Q(reservation_lines__reservation__status__in=HELD))
    return StockItem.objects.annotate(held=Coalesce(held, 0)).annotate(
        on_hand=F("quantity_on_hand") + F("held")).order_by("sku")


def stock_held(*, stock_item_id: int) -> int:
    """The units of one stock item held for orders (reserved or being picked)."""
    return Reservation.objects.filter(status__in=HELD, lines__stock_item_id=stock_item_id).aggregate(
        held=Coalesce(Sum("lines__quantity"), 0))["held"]


def pick_list() -> QuerySet[Reservation]:
    """Reservations with their lines and bins, oldest waiting first among those being picked."""
    return Reservation.objects.prefetch_related("lines__stock_item")


def reservation_get(*, order_id: UUID) -> Reservation | None:
    return Reservation.objects.filter(order_id=order_id).prefetch_related("lines__stock_item").first()


def stock_on_hand(*, skus: Iterable[str]) -> dict[str, int]:
    """{sku: units on hand} for these skus (a sku the warehouse does not stock is left out)."""
    return dict(StockItem.objects.filter(sku__in=list(skus)).values_list("sku", "quantity_on_hand"))


def skus_in_stock() -> QuerySet:
    """The skus with at least one unit on hand (a subquery for other reads)."""
    return StockItem.objects.filter(quantity_on_hand__gt=0).values("sku")

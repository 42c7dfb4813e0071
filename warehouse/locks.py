"""Every row lock the warehouse takes, in one place.

Stock rows are always locked in primary-key order, by whoever locks them (a reservation, a
release): two orders sharing products wait for each other instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.db.models import QuerySet

from warehouse.models import Reservation, StockItem


def stock_for_update(skus: Iterable[str]) -> QuerySet[StockItem]:
    """The stock rows of ``skus``, locked in primary-key order (a missing sku is simply absent)."""
    return StockItem.objects.filter(sku__in=list(skus)).order_by("pk").select_for_update()


def reservation_for_update(order_id: UUID) -> Reservation | None:
    """The order's reservation, locked (None when the warehouse never heard of the order)."""
    return Reservation.objects.filter(order_id=order_id).select_for_update().first()

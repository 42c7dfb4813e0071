"""Every row lock the shop takes (``select_for_update``), in one place.

Each function is called inside the caller's transaction; the lock lasts until it ends. A
shop service locks one order and nothing else; a lock on several rows would take them in
primary-key order, so that two transactions never wait for each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from config.errors import NotFound
from shop.models import Order


def order_for_update(order_id: UUID | str) -> Order:
    """The order, locked until the end of the caller's transaction; NotFound when there is none
    (also for an id that is no UUID)."""
    try:
        return Order.objects.select_for_update().get(pk=order_id)
    except (Order.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"order {order_id} does not exist", field="order_id") from None


def orders_for_update(order_ids: Iterable[UUID | str]) -> QuerySet[Order]:
    """The orders of ``order_ids`` (those that exist), locked in one statement in primary-key
    order: a worker's batch takes them all before it changes any (the global lock order)."""
    return Order.objects.filter(pk__in=list(order_ids)).order_by("pk").select_for_update()

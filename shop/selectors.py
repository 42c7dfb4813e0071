"""Shop reads used by the shop's API and admin, and by the read model (observability) and the demo."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, OuterRef, QuerySet

from config.errors import NotFound
from shop.models import FINAL_STATUSES, Order, OrderStatusChange, Product

VIEW_ORDERS_PERMISSION = "shop.view_order"
CANCEL_ORDERS_PERMISSION = "shop.cancel_order"


def order_list(*, user: User) -> QuerySet[Order]:
    """Every order for a user given ``shop.view_order`` (the staff flag alone is not enough),
    a customer their own."""
    qs = Order.objects.prefetch_related("lines").select_related("customer")
    if user.has_perm(VIEW_ORDERS_PERMISSION):
        return qs
    return qs.filter(customer__user=user)


def order_get(*, user: User, order_id: UUID | str) -> Order:
    """The order if ``user`` may see it; NotFound otherwise (never telling that it exists)."""
    try:
        return order_list(user=user).prefetch_related("history").get(pk=order_id)
    except (Order.DoesNotExist, ValueError, ValidationError):
        raise NotFound("order not found") from None


def order_find(*, order_id: str) -> Order | None:
    """The order with this id, or None (also for an id that is no UUID); staff views only."""
    try:
        return Order.objects.filter(pk=order_id).first()
    except (ValidationError, ValueError):
        return None


def order_counts_by_status() -> dict[str, int]:
    """{status: number of orders in it}, for the statuses that have any."""
    return dict(Order.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def orders_stalled(*, before: datetime, limit: int = 5) -> tuple[int, list[Mapping[str, Any]]]:
    """Orders in a non-final status that nothing moved since ``before``: how many, and the
    ``limit`` oldest as plain rows (id, status, updated_at)."""
    stalled = Order.objects.exclude(status__in=FINAL_STATUSES).filter(updated_at__lt=before)
    return stalled.count(), list(stalled.order_by("updated_at").values("id", "status", "updated_at")[:limit])


def orders_newest(*, limit: int) -> list[Mapping[str, Any]]:
    """The newest orders as plain rows: id, status, shipment_id, created_at, updated_at (no personal data)."""
    return list(Order.objects.order_by("-created_at", "-id").values(
        "id", "status", "shipment_id", "created_at", "updated_at")[:limit])


def order_status_changes(*, since: datetime, until: datetime) -> Iterator[tuple[UUID, str, datetime]]:
    """(order_id, status, at) of every status change up to ``until``, oldest first, of the
    orders that were not final yet at ``since`` (an iterator: the history may be long)."""
    finished_before = OrderStatusChange.objects.filter(
        order=OuterRef("order_id"), status__in=FINAL_STATUSES, at__lt=since)
    return (
        OrderStatusChange.objects.filter(at__lte=until)
        .filter(~Exists(finished_before))
        .order_by("at", "id")
        .values_list("order_id", "status", "at")
        .iterator(chunk_size=2000)
    )


def product_list() -> QuerySet[Product]:
    """The catalogue: the products on sale (active), by product id."""
    return Product.objects.filter(active=True).order_by("sku")

"""Warehouse writes: all-or-nothing stock reservation and picking."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.rows import row_insert, row_lock, row_update, row_values, rows_lock_among
from config.transactions import service_transaction
from messaging.outbox import outbox_emit, outbox_publish
from messaging.topology import SHIPPING_ORDERS
from warehouse.models import Reservation, ReservationLine, StockItem

PRODUCER = "warehouse"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestedLine:
    sku: str
    quantity: int
    name: str = ""


def stock_lock(*, skus: Sequence[str]) -> dict[str, StockItem]:
    """Lock the stock rows of ``skus`` in primary-key order (one order for every caller: no deadlocks)."""
    return {item.sku: item for item in rows_lock_among(StockItem, "sku", skus)}


@service_transaction
def stock_reserve(
    *,
    order_id: UUID,
    lines: Sequence[RequestedLine],
    recipient: str,
    shipping_address: dict,
    shipping_method: str,
) -> Reservation:
    """Reserve every line of the order or none, and answer on ``order_confirmations``.

    A repeated request for the same order returns the first answer and emits nothing.
    """
    if row_values(Reservation, ("id",), order_id=order_id) is not None:  # asked before: answered before
        return Reservation.objects.get(order_id=order_id)
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    items = stock_lock(skus=list(wanted))
    shortages = []
    for sku, quantity in sorted(wanted.items()):
        item = items.get(sku)
        if item is None:
            shortages.append({"product_id": sku, "requested": quantity, "available": 0})
        elif item.quantity_on_hand < quantity:
            shortages.append({"product_id": sku, "requested": quantity, "available": item.quantity_on_hand})

    reservation = Reservation(
        order_id=order_id, recipient=recipient, shipping_address=shipping_address, shipping_method=shipping_method
    )
    if shortages:
        reservation.status = Reservation.Status.REJECTED
        reservation.reason = "Insufficient stock for: " + ", ".join(
            f"{s['product_id']} (requested {s['requested']}, available {s['available']})" for s in shortages
        )
        row_insert(reservation)
        outbox_publish(
            type="order.rejected", correlation_id=order_id, producer=PRODUCER,
            payload={"order_id": str(order_id), "message": reservation.reason, "unavailable": shortages},
        )
        return reservation

    reservation.status = Reservation.Status.RESERVED
    row_insert(reservation)
    for sku, quantity in wanted.items():
        item = items[sku]
        # Caller holds the row lock; the conditional update is the belt to those braces.
        updated = StockItem.objects.filter(pk=item.pk, quantity_on_hand__gte=quantity).update(
            quantity_on_hand=F("quantity_on_hand") - quantity
        )
        if updated != 1:  # pragma: no cover - impossible while the lock is held
            raise RuntimeError(f"stock of {sku} changed under its lock")
        row_insert(ReservationLine(reservation=reservation, stock_item=item, quantity=quantity))
    outbox_publish(
        type="order.confirmed", correlation_id=order_id, producer=PRODUCER,
        payload={
            "order_id": str(order_id),
            "message": "All items reserved: " + ", ".join(f"{q} x {s}" for s, q in wanted.items()),
            "items": [{"product_id": s, "quantity": q} for s, q in wanted.items()],
        },
    )
    return reservation


@service_transaction
def picking_start(*, order_id: UUID) -> Reservation | None:
    """The order is paid: it is to be picked, and whoever picks (staff, or the demo's simulated
    staff) hears ``picking.started``. Idempotent."""
    reservation = row_lock(Reservation, order_id=order_id)
    if reservation is None or reservation.status != Reservation.Status.RESERVED:
        return reservation
    reservation.status = Reservation.Status.PICKING
    row_update(reservation, ["status"])
    outbox_publish(type="picking.started", correlation_id=order_id, producer=PRODUCER,
                   payload={"order_id": str(order_id)})
    return reservation


@service_transaction
def reservation_release(*, order_id: UUID, reason: str) -> Reservation:
    """Compensation: return a reserved order's stock (once). An order not reserved yet gets a
    released reservation, so that its late request reserves nothing."""
    reservation = Reservation.objects.select_for_update().filter(order_id=order_id).first()
    if reservation is None:
        return Reservation.objects.create(order_id=order_id, status=Reservation.Status.RELEASED, reason=reason,
                                          released_at=timezone.now())
    if reservation.status != Reservation.Status.RESERVED:
        if reservation.status in (Reservation.Status.PICKING, Reservation.Status.PICKED):
            logger.error("order %s: release asked after picking started (%s); nothing released",
                         order_id, reservation.status)
        return reservation
    lines = list(reservation.lines.all())
    stock_lock(skus=[line.stock_item.sku for line in reservation.lines.select_related("stock_item")])
    for line in lines:
        StockItem.objects.filter(pk=line.stock_item_id).update(quantity_on_hand=F("quantity_on_hand") + line.quantity)
    reservation.status = Reservation.Status.RELEASED
    reservation.reason = reason
    reservation.released_at = timezone.now()
    reservation.save(update_fields=["status", "reason", "released_at"])
    return reservation


@service_transaction
def picking_complete(*, order_id: UUID) -> Reservation | None:
    """Warehouse staff say the order is picked: hand it to transport on ``shipping_orders``.

    A repeated or late command (the order not being picked) changes nothing.
    """
    reservation = row_lock(Reservation, order_id=order_id)
    if reservation is None or reservation.status != Reservation.Status.PICKING:
        return reservation
    reservation.status = Reservation.Status.PICKED
    reservation.picked_at = timezone.now()
    row_update(reservation, ["status", "picked_at"])
    lines = reservation.lines.select_related("stock_item").order_by("stock_item__sku")
    outbox_emit(
        queue=SHIPPING_ORDERS, type="shipment.requested", correlation_id=order_id, producer=PRODUCER,
        payload={
            "order_id": str(order_id),
            "recipient": reservation.recipient,
            "shipping_address": reservation.shipping_address,
            "shipping_method": reservation.shipping_method,
            "items": [{"product_id": line.stock_item.sku, "quantity": line.quantity} for line in lines],
            "picked_at": reservation.picked_at.isoformat(),
        },
    )
    return reservation


def stock_item_upsert(*, sku: str, name: str, quantity_on_hand: int, location: str) -> StockItem:
    item, _ = StockItem.objects.update_or_create(
        sku=sku, defaults={"name": name, "quantity_on_hand": quantity_on_hand, "location": location}
    )
    return item

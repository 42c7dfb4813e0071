"""Warehouse writes: all-or-nothing stock reservation, picking, and the release of a reservation.

A reservation moves forward only: reserved -> picking -> picked, or reserved -> released; a
rejected or released one stays so. A command that finds it elsewhere (repeated, late, out of
order) changes nothing and emits nothing.

Each service owns its transaction (``transaction.atomic``). Called from a message handler it
joins the handler's transaction without a savepoint of its own (``savepoint=False``): the
handler never carries on after an error, the whole transaction rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from uuid import UUID

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.errors import DomainError, NotFound
from contracts.messages import (
    OrderConfirmed,
    OrderRejected,
    PickingStarted,
    ReservedLine,
    ShipmentRequested,
    Shortage,
    StockAdjusted,
)
from messaging.outbox import outbox_emit, outbox_publish
from messaging.topology import SHIPPING_ORDERS
from warehouse.locks import reservation_for_update, stock_for_update
from warehouse.models import Reservation, ReservationLine, StockAdjustment, StockItem
from warehouse.selectors import stock_held

PRODUCER = "warehouse"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestedLine:
    sku: str
    quantity: int
    name: str = ""


@transaction.atomic(savepoint=False)
def stock_lock(*, skus: Iterable[str]) -> None:
    """Lock the stock rows of ``skus`` in one statement, in primary-key order: what a worker's
    batch of orders will reserve, locked up front so that two batches sharing products never
    lock them in opposite orders (``warehouse.locks``). Caller holds the transaction."""
    list(stock_for_update(set(skus)))


@transaction.atomic(savepoint=False)
def stock_reserve(
    *,
    order_id: UUID,
    lines: Sequence[RequestedLine],
    recipient: str,
    shipping_address: dict[str, Any],
    shipping_method: str,
) -> Reservation:
    """Reserve every line of the order or none, and answer with ``order.confirmed`` or ``order.rejected``.

    An order the warehouse answered before (a repeated request), or whose release overtook it,
    gets that reservation back: nothing reserved, nothing emitted.
    """
    answered = Reservation.objects.filter(order_id=order_id).first()
    if answered is not None:
        return answered
    wanted = _quantities_wanted(lines)
    items = {item.sku: item for item in stock_for_update(wanted)}
    reservation = Reservation(order_id=order_id, recipient=recipient, shipping_address=shipping_address,
                              shipping_method=shipping_method)
    shortages = _stock_shortages(wanted, items)
    if shortages:
        return _reservation_reject(reservation, shortages)
    return _reservation_confirm(reservation, wanted, items)


def _quantities_wanted(lines: Sequence[RequestedLine]) -> dict[str, int]:
    """The quantity of each sku (a sku on several lines is summed)."""
    wanted: dict[str, int] = {}
    for line in lines:
        wanted[line.sku] = wanted.get(line.sku, 0) + line.quantity
    return wanted


def _stock_shortages(wanted: dict[str, int], items: dict[str, StockItem]) -> list[Shortage]:
    """What cannot be reserved, by sku. Caller holds the lock of the stock rows ``items``."""
    return [
        Shortage(product_id=sku, requested=quantity, available=items[sku].quantity_on_hand if sku in items else 0)
        for sku, quantity in sorted(wanted.items())
        if sku not in items or items[sku].quantity_on_hand < quantity
    ]


def _reservation_reject(reservation: Reservation, shortages: list[Shortage]) -> Reservation:
    """Store the reservation as rejected, naming what is short, and answer ``order.rejected``."""
    reservation.status = Reservation.Status.REJECTED
    reservation.reason = "Insufficient stock for: " + ", ".join(
        f"{s.product_id} (requested {s.requested}, available {s.available})" for s in shortages
    )
    reservation.save(force_insert=True)
    order_id = reservation.order_id
    outbox_publish(OrderRejected(order_id=order_id, message=reservation.reason, unavailable=shortages),
                   correlation_id=order_id, producer=PRODUCER)
    return reservation


def _reservation_confirm(reservation: Reservation, wanted: dict[str, int], items: dict[str, StockItem]) -> Reservation:
    """Take the stock, store the reservation and its lines, and answer ``order.confirmed``.
    Caller holds the lock of the stock rows ``items`` and found enough of each."""
    reservation.status = Reservation.Status.RESERVED
    reservation.save(force_insert=True)
    for sku, quantity in wanted.items():
        # The row lock is held; the condition is the belt to those braces (and the check
        # constraint the last line of defence).
        taken = StockItem.objects.filter(pk=items[sku].pk, quantity_on_hand__gte=quantity).update(
            quantity_on_hand=F("quantity_on_hand") - quantity, updated_at=timezone.now()
        )
        if taken != 1:  # pragma: no cover - impossible while the lock is held
            raise RuntimeError(f"stock of {sku} changed under its lock")
    ReservationLine.objects.bulk_create(
        ReservationLine(reservation=reservation, stock_item=items[sku], quantity=quantity)
        for sku, quantity in wanted.items()
    )
    order_id = reservation.order_id
    outbox_publish(
        OrderConfirmed(
            order_id=order_id,
            message="All items reserved: " + ", ".join(f"{q} x {s}" for s, q in wanted.items()),
            items=[ReservedLine(product_id=s, quantity=q) for s, q in wanted.items()],
        ),
        correlation_id=order_id, producer=PRODUCER,
    )
    return reservation


@transaction.atomic(savepoint=False)
def picking_start(*, order_id: UUID) -> Reservation | None:
    """The order is paid: a reserved order is to be picked, and whoever picks (staff, or the
    demo's simulated staff) hears ``picking.started``. Any other reservation (none yet,
    released, already picking) is left as it is. Returns the reservation (None if none)."""
    reservation = reservation_for_update(order_id)
    if reservation is None or reservation.status != Reservation.Status.RESERVED:
        return reservation
    reservation.status = Reservation.Status.PICKING
    reservation.save(update_fields=["status"])
    outbox_publish(PickingStarted(order_id=order_id), correlation_id=order_id, producer=PRODUCER)
    return reservation


@transaction.atomic(savepoint=False)
def reservation_release(*, order_id: UUID, reason: str) -> Reservation:
    """Compensation: return a reserved order's stock, once. An order not heard of yet gets a
    released reservation, so that its late request reserves nothing; one being picked or
    picked keeps its stock (it is on its way)."""
    reservation = reservation_for_update(order_id)
    if reservation is None:
        return Reservation.objects.create(order_id=order_id, status=Reservation.Status.RELEASED, reason=reason,
                                          released_at=timezone.now())
    if reservation.status != Reservation.Status.RESERVED:
        if reservation.status in (Reservation.Status.PICKING, Reservation.Status.PICKED):
            logger.error("order %s: release asked after picking started (%s); nothing released",
                         order_id, reservation.status)
        return reservation
    lines = list(reservation.lines.select_related("stock_item"))
    list(stock_for_update(line.stock_item.sku for line in lines))  # the stock order every locker keeps
    for line in lines:
        StockItem.objects.filter(pk=line.stock_item_id).update(
            quantity_on_hand=F("quantity_on_hand") + line.quantity, updated_at=timezone.now()
        )
    reservation.status = Reservation.Status.RELEASED
    reservation.reason = reason
    reservation.released_at = timezone.now()
    reservation.save(update_fields=["status", "reason", "released_at"])
    return reservation


@transaction.atomic(savepoint=False)
def picking_complete(*, order_id: UUID) -> Reservation | None:
    """Warehouse staff say the order is picked: hand it to transport (``shipment.requested``).

    A repeated or late command (the order not being picked) changes nothing. Returns the
    reservation (None if none).
    """
    reservation = reservation_for_update(order_id)
    if reservation is None or reservation.status != Reservation.Status.PICKING:
        return reservation
    reservation.status = Reservation.Status.PICKED
    reservation.picked_at = timezone.now()
    reservation.save(update_fields=["status", "picked_at"])
    lines = reservation.lines.select_related("stock_item").order_by("stock_item__sku")
    outbox_emit(
        ShipmentRequested(
            order_id=order_id,
            recipient=reservation.recipient,
            shipping_address=reservation.shipping_address,
            shipping_method=reservation.shipping_method,
            items=[ReservedLine(product_id=line.stock_item.sku, quantity=line.quantity) for line in lines],
            picked_at=reservation.picked_at,
        ),
        queue=SHIPPING_ORDERS, correlation_id=order_id, producer=PRODUCER,
    )
    return reservation


MAX_ADJUSTMENT = 1_000_000


@transaction.atomic
def stock_adjust(*, sku: str, reason: str, quantity: int, note: str = "", made_by: str = "") -> StockAdjustment:
    """A person's change of one product's stock, with its reason; written to the stock's history
    and announced (``stock.adjusted``).

    ``counted``: ``quantity`` is what stands on the shelf, the units held for orders included
    (the worker types what they see; what is left to sell follows). ``received``: units added.
    ``damaged``: units written off, out of what is left to sell.

    Units held for orders are never taken: a count below them, or damage beyond what is left to
    sell, is refused (``DomainError`` naming ``quantity``), so no order loses stock it was promised.
    """
    if reason not in StockAdjustment.Reason.values:
        raise DomainError(f"must be one of {', '.join(StockAdjustment.Reason.values)}", field="reason")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= MAX_ADJUSTMENT:
        raise DomainError(f"must be a whole number from 0 to {MAX_ADJUSTMENT}", field="quantity")
    if reason != StockAdjustment.Reason.COUNTED and quantity == 0:
        raise DomainError(f"{reason}: at least one unit", field="quantity")
    item = stock_for_update([sku]).first()
    if item is None:
        raise NotFound(f"no stock item {sku!r}", field="sku")
    held = stock_held(stock_item_id=item.pk)
    on_hand = item.quantity_on_hand + held
    if reason == StockAdjustment.Reason.COUNTED:
        if quantity < held:
            raise DomainError(f"counted {quantity}, but {held} are held for orders: count again, or release "
                              f"those orders first", field="quantity")
        change = quantity - on_hand
    elif reason == StockAdjustment.Reason.RECEIVED:
        change = quantity
    else:
        if quantity > item.quantity_on_hand:
            raise DomainError(f"only {item.quantity_on_hand} left to sell ({held} held for orders): at most "
                              f"{item.quantity_on_hand} can be written off", field="quantity")
        change = -quantity
    if change:
        StockItem.objects.filter(pk=item.pk).update(quantity_on_hand=F("quantity_on_hand") + change,
                                                    updated_at=timezone.now())
    adjustment = StockAdjustment.objects.create(
        stock_item=item, reason=reason, quantity=quantity, change=change, on_hand_after=on_hand + change,
        held=held, available_after=item.quantity_on_hand + change, note=note[:500], made_by=made_by[:150])
    outbox_publish(StockAdjusted(adjustment_id=adjustment.id, product_id=item.sku,
                                 reason=cast(Literal["counted", "received", "damaged"], reason),  # in Reason.values
                                 change=change,
                                 on_hand=adjustment.on_hand_after, held=held, available=adjustment.available_after,
                                 adjusted_at=adjustment.made_at),
                   correlation_id=adjustment.id, producer=PRODUCER)
    logger.info("stock of %s %s by %s: %+d (on hand %d, held %d)", item.sku, reason, made_by or "?", change,
                adjustment.on_hand_after, held)
    return adjustment


def stock_item_upsert(*, sku: str, name: str, quantity_on_hand: int, location: str) -> StockItem:
    """The catalogue's stock of ``sku`` (demo data, stock counts): created or overwritten."""
    item, _ = StockItem.objects.update_or_create(
        sku=sku, defaults={"name": name, "quantity_on_hand": quantity_on_hand, "location": location}
    )
    return item

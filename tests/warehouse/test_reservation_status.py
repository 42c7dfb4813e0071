"""A reservation moves forward only (reserved -> picking -> picked, or reserved -> released), and
a late, repeated or out-of-order message changes nothing: exact status, stock and outbox rows."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from contracts.messages import OrderCancelled, OrderedLine, OrderPaid, OrderPaymentFailed, OrderPlaced
from messaging.envelope import Message
from messaging.models import OutboxMessage
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS
from tests.handling import handled
from warehouse.models import Reservation, StockItem
from warehouse.services import picking_complete

pytestmark = pytest.mark.django_db

SEED_STOCK = {"PRD001": 10, "PRD002": 15, "PRD003": 20, "PRD004": 25}


def message(queue: str, payload: Any) -> Message:  # any contract with an order_id
    """A message as the consumer hands it to a handler: each one a new message id."""
    return Message(queue=queue, message_id=str(uuid.uuid4()), type=payload.TYPE, correlation_id=str(payload.order_id),
                   causation_id="", payload=payload.payload(), producer="shop")


def order_placed(order_id: uuid.UUID, lines: list[tuple[str, int]]) -> None:
    handled(message(NEW_ORDERS, OrderPlaced(
        order_id=order_id, recipient="Jaan Tamm", contact_email="jaan.tamm@example.com",
        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"}, shipping_method="express",
        items=[OrderedLine(product_id=sku, quantity=quantity) for sku, quantity in lines],
        total=Decimal("1299.99"), currency="EUR", placed_at=datetime(2025, 5, 1, 12, 0, tzinfo=UTC),
    )))


def order_paid(order_id: uuid.UUID) -> None:
    handled(message(FULFILMENT_REQUESTS, OrderPaid(order_id=order_id)))


def order_cancelled(order_id: uuid.UUID) -> None:
    handled(message(FULFILMENT_REQUESTS, OrderCancelled(order_id=order_id, message="")))


def payment_failed(order_id: uuid.UUID) -> None:
    handled(message(FULFILMENT_REQUESTS, OrderPaymentFailed(
        order_id=order_id, message="card declined")))


def status(order_id: uuid.UUID) -> str:
    return Reservation.objects.values_list("status", flat=True).get(order_id=order_id)


def stock() -> dict[str, int]:
    return dict(StockItem.objects.values_list("sku", "quantity_on_hand"))


def emitted(order_id: uuid.UUID) -> list[str]:
    rows = OutboxMessage.objects.filter(correlation_id=str(order_id)).order_by("id")
    return list(rows.values_list("type", flat=True))


# --- order.placed ------------------------------------------------------------------------
def test_a_repeated_order_placed_reserves_once(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD004", 5)])
    # when: the same order again (a new message: republished, or placed twice)
    order_placed(order_id, [("PRD004", 5)])
    # then
    assert Reservation.objects.filter(order_id=order_id).count() == 1
    assert status(order_id) == "reserved"
    assert stock() == {**SEED_STOCK, "PRD004": 20}
    assert emitted(order_id) == ["order.confirmed"]


def test_a_repeated_order_placed_keeps_the_first_answer_even_when_stock_arrived(catalogue):
    # given: rejected for want of stock, then stock arrives
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 11)])
    StockItem.objects.filter(sku="PRD001").update(quantity_on_hand=50)
    # when
    order_placed(order_id, [("PRD001", 11)])
    # then
    assert status(order_id) == "rejected"
    assert stock()["PRD001"] == 50
    assert emitted(order_id) == ["order.rejected"]


def test_an_order_placed_after_its_cancellation_reserves_nothing(catalogue):
    # given: the cancellation overtook the order
    order_id = uuid.uuid4()
    order_cancelled(order_id)
    # when
    order_placed(order_id, [("PRD001", 1)])
    # then
    reservation = Reservation.objects.get(order_id=order_id)
    assert (reservation.status, reservation.reason) == ("released", "order cancelled")
    assert reservation.lines.count() == 0
    assert stock() == SEED_STOCK
    assert emitted(order_id) == []


def test_an_order_placed_after_picking_reserves_nothing_more(catalogue):
    # given: reserved, paid, picked
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 2)])
    order_paid(order_id)
    picking_complete(order_id=order_id)
    # when
    order_placed(order_id, [("PRD001", 2)])
    # then
    assert status(order_id) == "picked"
    assert stock()["PRD001"] == 8
    assert emitted(order_id) == ["order.confirmed", "picking.started", "shipment.requested"]


# --- order.paid --------------------------------------------------------------------------
def test_a_repeated_order_paid_starts_picking_once(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 1)])
    order_paid(order_id)
    # when
    order_paid(order_id)
    # then
    assert status(order_id) == "picking"
    assert emitted(order_id) == ["order.confirmed", "picking.started"]


def test_a_late_order_paid_after_a_release_picks_nothing(catalogue):
    # given: reserved, then the payment failed and the stock went back
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 3)])
    payment_failed(order_id)
    # when: a late (or redelivered) order.paid, then a late picking done
    order_paid(order_id)
    picking_complete(order_id=order_id)
    # then
    reservation = Reservation.objects.get(order_id=order_id)
    assert (reservation.status, reservation.reason, reservation.picked_at) == ("released", "card declined", None)
    assert stock() == SEED_STOCK
    assert emitted(order_id) == ["order.confirmed"]


def test_a_late_order_paid_after_picking_starts_nothing_again(catalogue):
    # given: picked and handed over
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 1)])
    order_paid(order_id)
    picking_complete(order_id=order_id)
    # when
    order_paid(order_id)
    # then
    assert status(order_id) == "picked"
    assert emitted(order_id) == ["order.confirmed", "picking.started", "shipment.requested"]


def test_an_order_paid_for_a_rejected_order_picks_nothing(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 11)])
    # when
    order_paid(order_id)
    # then
    assert status(order_id) == "rejected"
    assert emitted(order_id) == ["order.rejected"]


# --- release -----------------------------------------------------------------------------
def test_a_release_after_picking_started_releases_nothing(catalogue):
    # given: reserved and paid
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 2), ("PRD003", 1)])
    order_paid(order_id)
    # when
    order_cancelled(order_id)
    # then: still being picked, the stock still out, nothing emitted
    reservation = Reservation.objects.get(order_id=order_id)
    assert (reservation.status, reservation.reason, reservation.released_at) == ("picking", "", None)
    assert stock() == {**SEED_STOCK, "PRD001": 8, "PRD003": 19}
    assert emitted(order_id) == ["order.confirmed", "picking.started"]
    # and picking still completes
    assert picking_complete(order_id=order_id).status == "picked"


def test_a_release_after_picking_releases_nothing(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 2)])
    order_paid(order_id)
    picking_complete(order_id=order_id)
    # when
    payment_failed(order_id)
    # then
    assert status(order_id) == "picked"
    assert stock()["PRD001"] == 8
    assert emitted(order_id) == ["order.confirmed", "picking.started", "shipment.requested"]


def test_a_repeated_release_returns_the_stock_once(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 2), ("PRD003", 3)])
    order_cancelled(order_id)
    released_at = Reservation.objects.get(order_id=order_id).released_at
    # when: the other compensation too, and the first again
    payment_failed(order_id)
    order_cancelled(order_id)
    # then
    reservation = Reservation.objects.get(order_id=order_id)
    assert (reservation.status, reservation.reason, reservation.released_at) == (
        "released", "order cancelled", released_at)
    assert stock() == SEED_STOCK
    assert emitted(order_id) == ["order.confirmed"]


def test_a_release_of_a_rejected_order_returns_nothing(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 1), ("PRD002", 16)])
    # when
    order_cancelled(order_id)
    # then
    assert status(order_id) == "rejected"
    assert stock() == SEED_STOCK
    assert emitted(order_id) == ["order.rejected"]


# --- picking done ------------------------------------------------------------------------
def test_picking_complete_twice_ships_once(catalogue):
    # given
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 1)])
    order_paid(order_id)
    first = picking_complete(order_id=order_id)
    # when
    again = picking_complete(order_id=order_id)
    # then
    assert (again.status, again.picked_at) == ("picked", first.picked_at)
    assert Reservation.objects.get(order_id=order_id).picked_at == first.picked_at
    assert emitted(order_id) == ["order.confirmed", "picking.started", "shipment.requested"]


def test_picking_complete_waits_for_payment(catalogue):
    # given: reserved but not paid
    order_id = uuid.uuid4()
    order_placed(order_id, [("PRD001", 1)])
    # when
    reservation = picking_complete(order_id=order_id)
    # then
    assert (reservation.status, reservation.picked_at) == ("reserved", None)
    assert emitted(order_id) == ["order.confirmed"]


def test_picking_complete_for_an_unknown_order_is_none(catalogue):
    assert picking_complete(order_id=uuid.uuid4()) is None
    assert not OutboxMessage.objects.exists()

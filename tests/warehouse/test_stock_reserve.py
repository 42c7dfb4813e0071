"""Stock reservation: all lines or none, never below zero, and the answer the shop hears."""

import uuid
from datetime import datetime

import pytest
from django.db import IntegrityError, transaction

from messaging.models import OutboxMessage
from warehouse.models import Reservation, StockItem
from warehouse.services import RequestedLine, picking_complete, picking_start, reservation_release, stock_reserve

pytestmark = pytest.mark.django_db

SEED_STOCK = {"PRD001": 10, "PRD002": 15, "PRD003": 20, "PRD004": 25}


def reserve(order_id: uuid.UUID, lines: list[tuple[str, int]]) -> Reservation:
    return stock_reserve(
        order_id=order_id, lines=[RequestedLine(sku=s, quantity=q) for s, q in lines],
        recipient="Jaan Tamm", shipping_address={"street": "Narva mnt 5", "city": "Tallinn"}, shipping_method="express",
    )


def stock() -> dict[str, int]:
    return dict(StockItem.objects.values_list("sku", "quantity_on_hand"))


def outbox(order_id: uuid.UUID) -> list[tuple[str, str, str, dict]]:
    rows = OutboxMessage.objects.filter(correlation_id=str(order_id)).order_by("id")
    return [(row.exchange, row.queue, row.type, row.payload) for row in rows]


def test_confirmed_order_reserves_every_line_and_waits_for_payment(catalogue):
    # given
    order_id = uuid.uuid4()
    # when
    reservation = reserve(order_id, [("PRD001", 1), ("PRD003", 2)])
    # then
    assert reservation.status == "reserved"
    assert sorted(reservation.lines.values_list("stock_item__sku", "quantity")) == [("PRD001", 1), ("PRD003", 2)]
    assert stock() == {"PRD001": 9, "PRD002": 15, "PRD003": 18, "PRD004": 25}
    assert outbox(order_id) == [("logistics.events", "order.confirmed", "order.confirmed", {
        "order_id": str(order_id),
        "message": "All items reserved: 1 x PRD001, 2 x PRD003",
        "items": [{"product_id": "PRD001", "quantity": 1}, {"product_id": "PRD003", "quantity": 2}],
    })]


def test_lines_of_the_same_product_are_reserved_together(catalogue):
    # given
    order_id = uuid.uuid4()
    # when
    reservation = reserve(order_id, [("PRD002", 4), ("PRD002", 5)])
    # then
    assert list(reservation.lines.values_list("stock_item__sku", "quantity")) == [("PRD002", 9)]
    assert stock()["PRD002"] == 6


def test_one_unavailable_line_reserves_nothing_and_names_the_product(catalogue):
    # given: the first line is available, the second is not
    order_id = uuid.uuid4()
    # when
    reservation = reserve(order_id, [("PRD001", 1), ("PRD002", 16)])
    # then
    reason = "Insufficient stock for: PRD002 (requested 16, available 15)"
    assert (reservation.status, reservation.reason) == ("rejected", reason)
    assert reservation.lines.count() == 0
    assert stock() == SEED_STOCK
    assert outbox(order_id) == [("logistics.events", "order.rejected", "order.rejected", {
        "order_id": str(order_id),
        "message": reason,
        "unavailable": [{"product_id": "PRD002", "requested": 16, "available": 15}],
    })]


def test_unknown_product_is_a_rejection_not_a_crash(catalogue):
    # when
    reservation = reserve(uuid.uuid4(), [("NOPE", 1), ("PRD001", 1)])
    # then
    assert (reservation.status, reservation.reason) == (
        "rejected", "Insufficient stock for: NOPE (requested 1, available 0)")
    assert stock() == SEED_STOCK


def test_the_last_units_can_be_reserved_but_not_one_more(catalogue):
    # given
    first, second = uuid.uuid4(), uuid.uuid4()
    # when
    everything = reserve(first, [("PRD001", 10)])
    one_more = reserve(second, [("PRD001", 1)])
    # then
    assert (everything.status, one_more.status) == ("reserved", "rejected")
    assert stock()["PRD001"] == 0


def test_picking_hands_the_order_to_transport_once(catalogue):
    # given
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD003", 2), ("PRD001", 1)])
    # when: paid, then picked
    picking_start(order_id=order_id)
    picked = picking_complete(order_id=order_id)
    # then: whoever picks heard of it, and transport got one shipping order
    assert picked.status == "picked"
    rows = outbox(order_id)
    assert [(exchange, queue, type) for exchange, queue, type, _ in rows] == [
        ("logistics.events", "order.confirmed", "order.confirmed"),
        ("logistics.events", "picking.started", "picking.started"),
        ("logistics", "shipping_orders", "shipment.requested"),
    ]
    assert rows[1][3] == {"order_id": str(order_id)}
    shipping_order = dict(rows[2][3])
    assert datetime.fromisoformat(shipping_order.pop("picked_at")) == picked.picked_at
    assert shipping_order == {
        "order_id": str(order_id),
        "recipient": "Jaan Tamm",
        "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn"},
        "shipping_method": "express",
        "items": [{"product_id": "PRD001", "quantity": 1}, {"product_id": "PRD003", "quantity": 2}],
    }


def test_the_database_refuses_negative_stock(catalogue):
    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(sku="PRD001").update(quantity_on_hand=-1)


def test_release_returns_the_stock(catalogue):
    # given
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD001", 2), ("PRD003", 3)])
    # when
    released = reservation_release(order_id=order_id, reason="payment declined")
    # then
    assert (released.status, released.reason) == ("released", "payment declined")
    assert released.released_at is not None
    assert stock() == SEED_STOCK
    assert [type for _, _, type, _ in outbox(order_id)] == ["order.confirmed"]

"""The warehouse's handlers read their messages through the contracts: what they need, or a dead letter."""

import uuid

import pytest

from messaging.envelope import InvalidMessage, Message
from messaging.models import OutboxMessage
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS
from tests.handling import handled
from warehouse.models import Reservation, StockItem

pytestmark = pytest.mark.django_db


def message(queue: str, type: str, payload: dict) -> Message:
    return Message(queue=queue, message_id=str(uuid.uuid4()), type=type, correlation_id=payload.get("order_id", ""),
                   causation_id="", payload=payload, producer="shop")


def order_placed_payload(order_id: str, changes: dict | None = None) -> dict:
    return {
        "order_id": order_id, "recipient": "Jaan Tamm", "contact_email": "jaan.tamm@example.com",
        "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn"}, "shipping_method": "express",
        "items": [{"product_id": "PRD001", "quantity": 2, "name": "Laptop"}],
        "total": "2599.98", "currency": "EUR", "placed_at": "2025-05-01T12:00:00Z",
        "a_field_from_a_newer_shop": True,
        **(changes or {}),
    }


def test_an_order_placed_keeps_what_the_warehouse_needs(catalogue):
    # given
    order_id = str(uuid.uuid4())
    # when
    handled(message(NEW_ORDERS, "order.placed", order_placed_payload(order_id)))
    # then
    reservation = Reservation.objects.get(order_id=order_id)
    assert (reservation.status, reservation.recipient, reservation.shipping_address, reservation.shipping_method) == (
        "reserved", "Jaan Tamm", {"street": "Narva mnt 5", "city": "Tallinn"}, "express")
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 8


@pytest.mark.parametrize(("changes", "error"), [
    ({"items": []}, "items"),
    ({"items": [{"product_id": "PRD001", "quantity": 0}]}, "items.0.quantity"),
    ({"order_id": "not-a-uuid"}, "order_id"),
    ({"recipient": ""}, "recipient"),
    ({"shipping_address": "Narva mnt 5"}, "shipping_address"),
], ids=["no items", "zero quantity", "bad order id", "no recipient", "address not an object"])
def test_a_broken_order_placed_is_a_dead_letter_and_reserves_nothing(catalogue, changes, error):
    # given
    order_id = str(uuid.uuid4())
    # when
    with pytest.raises(InvalidMessage) as raised:
        handled(message(NEW_ORDERS, "order.placed", order_placed_payload(order_id, changes)))
    # then
    assert str(raised.value).startswith("invalid order.placed payload: {'" + error + "'")
    assert not Reservation.objects.exists()
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 10
    assert not OutboxMessage.objects.exists()


@pytest.mark.parametrize("type", ["order.paid", "order.cancelled", "order.payment_failed"])
def test_a_fulfilment_request_without_an_order_id_is_a_dead_letter(db, type):
    with pytest.raises(InvalidMessage, match=rf"^invalid {type} payload: {{'order_id': 'Field required'}}$"):
        handled(message(FULFILMENT_REQUESTS, type, {"message": "x"}))
    assert not Reservation.objects.exists()

"""deliver(): one transaction per message, the processed record in it, services joined to it."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.consumer import DUPLICATE, HANDLED, deliver
from messaging.envelope import Message
from messaging.models import OutboxMessage, ProcessedMessage
from messaging.registry import route_for
from messaging.topology import NEW_ORDERS
from warehouse.models import Reservation, StockItem

pytestmark = pytest.mark.django_db(transaction=True)


def order_placed(order_id: str, quantity: int) -> Message:
    return Message(
        queue=NEW_ORDERS, message_id=str(uuid.uuid4()), type="order.placed", correlation_id=order_id,
        causation_id="", payload={
            "order_id": order_id, "recipient": "Jaan Tamm", "shipping_address": {"city": "Tallinn"},
            "shipping_method": "express", "items": [{"product_id": "PRD001", "quantity": quantity}],
        },
    )


def test_a_message_is_handled_in_one_transaction_without_savepoints_and_only_once(catalogue):
    order_id = str(uuid.uuid4())
    message = order_placed(order_id, 2)
    route = route_for(NEW_ORDERS)
    # when
    with CaptureQueriesContext(connection) as queries:
        outcome = deliver(route, message)
    # then: the reservation, its event and the processed record, with no savepoint on the way
    assert outcome == HANDLED
    assert Reservation.objects.get(order_id=order_id).status == "reserved"
    assert OutboxMessage.objects.filter(correlation_id=order_id, type="order.confirmed").count() == 1
    assert ProcessedMessage.objects.filter(consumer=route.consumer, message_id=message.message_id).count() == 1
    assert not [q for q in queries.captured_queries if "SAVEPOINT" in q["sql"]]
    # a redelivery is a duplicate and changes nothing
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand
    assert deliver(route, message) == DUPLICATE
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock
    assert OutboxMessage.objects.filter(correlation_id=order_id).count() == 1


def test_a_failing_handler_rolls_back_everything_with_the_processed_record(catalogue, monkeypatch):
    order_id = str(uuid.uuid4())
    message = order_placed(order_id, 1)
    route = route_for(NEW_ORDERS)
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand

    def outbox_down(**kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("warehouse.services.outbox_publish", outbox_down)
    # when: the service fails after it changed stock and wrote its reservation
    with pytest.raises(RuntimeError):
        deliver(route, message)
    # then: none of it stayed, so a retry starts clean
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock
    assert not Reservation.objects.filter(order_id=order_id).exists()
    assert not ProcessedMessage.objects.filter(message_id=message.message_id).exists()
    monkeypatch.undo()
    assert deliver(route, message) == HANDLED
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock - 1

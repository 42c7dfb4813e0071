"""The relay and a queue worker against the real RabbitMQ and PostgreSQL."""

import json
import uuid

import pika
import pytest
from django.core.management import call_command
from django.db import transaction

import messaging.consumer as consumer
from contracts.messages import OrderPlaced
from messaging.consumer import QueueWorker
from messaging.lease import outbox_next_due
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.outbox import outbox_emit
from messaging.relay import OutboxRelay
from tests.messaging.examples import order_placed_payload
from warehouse.models import Reservation, StockItem

pytestmark = pytest.mark.django_db(transaction=True)


def test_relay_publishes_committed_rows_with_envelope_and_marks_them(broker):
    # given
    order_ids = [str(uuid.uuid4()) for _ in range(3)]
    with transaction.atomic():
        rows = [
            outbox_emit(OrderPlaced.model_validate(order_placed_payload(oid)), queue="new_orders",
                        correlation_id=oid, producer="shop")
            for oid in order_ids
        ]
    # when
    stats = OutboxRelay(install_signal_handlers=False).run(once=True)
    # then
    assert stats.published == 3
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
    received = []
    for _ in range(3):
        method, properties, body = broker.basic_get("new_orders", auto_ack=True)
        received.append((properties.message_id, properties.correlation_id, properties.type,
                         properties.delivery_mode, json.loads(body)["order_id"]))
    assert received == [(str(r.message_id), oid, "order.placed", 2, oid)
                        for r, oid in zip(rows, order_ids, strict=True)]
    assert broker.basic_get("new_orders")[0] is None


def test_unroutable_row_is_not_marked_published_and_is_reported(broker):
    # given: a destination no queue is bound to
    row = OutboxMessage.objects.create(queue="no_such_queue", type="x.y", correlation_id="c", payload={"a": 1})
    # when
    stats = OutboxRelay(install_signal_handlers=False).run(once=True)
    # then
    row.refresh_from_db()
    assert (stats.published, stats.failed) == (0, 1)
    assert row.published_at is None
    assert row.attempts == 1
    assert "unroutable" in row.last_error
    assert row.next_attempt_at is not None
    # and it waits, not due before its next attempt: a relay now sends nothing
    assert outbox_next_due() == row.next_attempt_at
    assert OutboxRelay(install_signal_handlers=False).run(once=True).published == 0


def publish_raw(channel, queue: str, body: bytes, *, message_id: str | None = "m",
                msg_type: str | None = "order.placed"):
    channel.basic_publish(
        exchange="", routing_key=queue, body=body,
        properties=pika.BasicProperties(message_id=message_id, type=msg_type, correlation_id="c", delivery_mode=2),
    )


def test_worker_parks_bad_messages_survives_them_and_handles_the_next_good_one(catalogue, broker):
    # given: five kinds of poison, then one good order, straight onto the queue
    good_order = str(uuid.uuid4())
    publish_raw(broker, "new_orders", b"{not json", message_id="bad-json")
    publish_raw(broker, "new_orders", b"[1, 2]", message_id="not-object")
    publish_raw(broker, "new_orders", b'{"order_id": "x"}', message_id="missing-fields")
    publish_raw(broker, "new_orders", b"{}", message_id="unknown-type", msg_type="order.exploded")
    publish_raw(broker, "new_orders", b"{}", message_id=None)
    good = json.dumps(order_placed_payload(good_order, quantity=2)).encode()
    publish_raw(broker, "new_orders", good, message_id="good")
    # when
    stats = QueueWorker("new_orders", prefetch=10, install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then
    assert (stats.handled, stats.parked) == (1, 5)
    parked = dict(DeadLetter.objects.values_list("message_id", "reason"))
    assert parked == {"bad-json": "invalid", "not-object": "invalid", "missing-fields": "invalid",
                      "unknown-type": "invalid", "": "invalid"}
    assert "not JSON" in DeadLetter.objects.get(message_id="bad-json").error
    assert "order.exploded" in DeadLetter.objects.get(message_id="unknown-type").error
    assert Reservation.objects.get(order_id=good_order).status == "reserved"
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 8
    assert broker.queue_declare("new_orders", passive=True).method.message_count == 0


def test_a_redelivered_message_changes_nothing_twice(catalogue, broker):
    # given: the same message delivered twice (a crash between commit and ack looks like this)
    order_id = str(uuid.uuid4())
    body = json.dumps(order_placed_payload(order_id, quantity=3)).encode()
    publish_raw(broker, "new_orders", body, message_id="same-id")
    publish_raw(broker, "new_orders", body, message_id="same-id")
    # when
    stats = QueueWorker("new_orders", prefetch=10, install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then
    assert (stats.handled, stats.duplicates) == (1, 1)
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 7
    assert Reservation.objects.filter(order_id=order_id).count() == 1
    assert ProcessedMessage.objects.filter(consumer="warehouse.new_orders", message_id="same-id").count() == 1
    assert OutboxMessage.objects.filter(type="order.confirmed", correlation_id=order_id).count() == 1


def test_deliveries_in_hand_are_handled_together_and_a_bad_one_among_them_is_sorted_out_alone(
        catalogue, broker, monkeypatch):
    # given: 20 orders waiting, the 7th with a payload that can never be handled, the 12th twice
    call_command("load_demo_data", stock=100, verbosity=0)
    orders = [str(uuid.uuid4()) for _ in range(20)]
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand
    for i, order_id in enumerate(orders):
        payload = order_placed_payload(order_id) if i != 6 else {"order_id": order_id}
        publish_raw(broker, "new_orders", json.dumps(payload).encode(), message_id=f"m{i}")
        if i == 11:
            publish_raw(broker, "new_orders", json.dumps(payload).encode(), message_id=f"m{i}")
    together = []
    real = consumer.deliver_together

    def spy(route, messages):
        together.append(len(messages))
        return real(route, messages)

    monkeypatch.setattr(consumer, "deliver_together", spy)
    # when
    stats = QueueWorker("new_orders", prefetch=50, install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then: deliveries received together were handled together (the broker sends a prefetch's worth at once)
    assert together
    assert max(together) > 1
    # and the bad one is parked on its own; every other one is handled once; nothing is left
    assert (stats.handled, stats.duplicates, stats.parked) == (19, 1, 1)
    assert dict(DeadLetter.objects.values_list("message_id", "reason")) == {"m6": "invalid"}
    assert Reservation.objects.filter(order_id__in=orders, status="reserved").count() == 19
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock - 19
    assert ProcessedMessage.objects.filter(consumer="warehouse.new_orders").count() == 19
    assert OutboxMessage.objects.filter(type="order.confirmed", correlation_id__in=orders).count() == 19
    assert broker.queue_declare("new_orders", passive=True).method.message_count == 0

"""The queue worker's one structured log line per message, and the metrics counted beside it."""

from __future__ import annotations

import json
import logging
import re
import uuid

import pika
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from messaging.consumer import QueueWorker

pytestmark = pytest.mark.django_db(transaction=True)

LINE = re.compile(
    r"^queue=(?P<queue>\S+) type=(?P<type>\S+) message_id=(?P<message_id>\S+) "
    r"correlation_id=(?P<correlation_id>\S+) outcome=(?P<outcome>\S+) duration_ms=(?P<duration_ms>\d+\.\d)$"
)


def counted(name: str, labels: dict[str, str]) -> float:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry.get_sample_value(name, labels) or 0.0


def publish(channel, body: bytes, *, message_id: str, correlation_id: str) -> None:
    channel.basic_publish("", "new_orders", body, pika.BasicProperties(
        content_type="application/json", delivery_mode=2, message_id=message_id, correlation_id=correlation_id,
        type="order.placed", headers={"producer": "shop", "causation_id": ""}))


def test_one_line_per_message_with_queue_type_ids_outcome_and_duration(catalogue, broker, caplog):
    # given: a good order, the same message again, and one that is not JSON
    order_id = str(uuid.uuid4())
    good_id, bad_id = str(uuid.uuid4()), str(uuid.uuid4())
    body = json.dumps({"order_id": order_id, "recipient": "Jaan Tamm", "shipping_method": "express",
                       "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn"},
                       "items": [{"product_id": "PRD001", "quantity": 1}], "total": "1299.99", "currency": "EUR",
                       "placed_at": "2026-12-01T10:00:00+00:00"}).encode()
    publish(broker, body, message_id=good_id, correlation_id=order_id)
    publish(broker, body, message_id=good_id, correlation_id=order_id)
    publish(broker, b"not json", message_id=bad_id, correlation_id=order_id)
    labels = {"queue": "new_orders"}
    before = [counted("logistics_messages_handled_total", {**labels, "outcome": "handled"}),
              counted("logistics_messages_handled_total", {**labels, "outcome": "duplicate"}),
              counted("logistics_messages_failed_total", {**labels, "outcome": "parked"}),
              counted("logistics_message_handler_seconds_count", labels)]
    caplog.set_level(logging.INFO, logger="messaging.consumer")
    # when
    stats = QueueWorker("new_orders", prefetch=5, install_signal_handlers=False).run(max_messages=3)
    # then
    assert (stats.handled, stats.duplicates, stats.parked) == (1, 1, 1)
    lines = [LINE.match(r.getMessage()) for r in caplog.records
             if r.name == "messaging.consumer" and r.getMessage().startswith("queue=new_orders type=")]
    assert all(lines)
    assert len(lines) == 3
    assert [(m["queue"], m["type"], m["message_id"], m["correlation_id"], m["outcome"]) for m in lines] == [
        ("new_orders", "order.placed", good_id, order_id, "handled"),
        ("new_orders", "order.placed", good_id, order_id, "duplicate"),
        ("new_orders", "order.placed", bad_id, order_id, "parked"),
    ]
    assert all(float(m["duration_ms"]) >= 0 for m in lines)
    after = [counted("logistics_messages_handled_total", {**labels, "outcome": "handled"}),
             counted("logistics_messages_handled_total", {**labels, "outcome": "duplicate"}),
             counted("logistics_messages_failed_total", {**labels, "outcome": "parked"}),
             counted("logistics_message_handler_seconds_count", labels)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 1.0, 1.0, 3.0]

"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from messaging.history import history_partitions_ensure
from messaging.metrics import message_observed
from messaging.models import DeadLetter, OutboxMessage
from observability import metrics
from shop.models import Order
from shop.services import Contact, OrderItem, order_place

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def counted(name: str, labels: dict[str, str]) -> float:
    """A counter/histogram sample as summed over every process's files (0 when absent)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry.get_sample_value(name, labels) or 0.0


# --- health -----------------------------------------------------------------------------------
def test_healthz_says_ok():
    # when
    response = Client().get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_200_with_the_real_database_and_broker(broker):
    # when
    response = Client().get("/readyz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_readyz_is_503_when_the_broker_does_not_answer(settings, socket_closed_port):
    # given
    settings.RABBITMQ_URL = f"amqp://guest:guest@127.0.0.1:{socket_closed_port}/%2F"
    # when
    response = Client().get("/readyz")
    # then
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable",
                               "checks": {"database": "ok", "broker": "error: ConnectionRefusedError"}}


# --- who may read /metrics ----------------------------------------------------------------------
def test_metrics_from_loopback_without_a_proxy(settings):
    # when
    loopback = Client().get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    forwarded = Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")  # no trusted proxy: ignored
    settings.METRICS_ALLOW_LOOPBACK = False
    turned_off = Client().get("/metrics")
    # then
    assert loopback.status_code == 200
    assert loopback["Content-Type"].startswith("text/plain; version=")
    assert (forwarded.status_code, turned_off.status_code) == (200, 403)


def test_metrics_from_elsewhere_needs_staff_or_the_token(settings, staff_client, customer_web_client):
    # given
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    remote = {"REMOTE_ADDR": "198.51.100.7"}
    # when
    anonymous = Client().get("/metrics", **remote)
    customer = customer_web_client.get("/metrics", **remote)
    wrong_token = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope", **remote)
    token = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", **remote)
    staff = staff_client.get("/metrics", **remote)
    # then
    assert [r.status_code for r in (anonymous, customer, wrong_token, token, staff)] == [403, 403, 403, 200, 200]
    assert anonymous.content == b"Forbidden: /metrics is for loopback, staff or the metrics token.\n"


# --- what /metrics says --------------------------------------------------------------------------
def test_metrics_text_has_database_figures_for_a_known_state(catalogue, make_customer, monkeypatch):
    # given: two new orders and one delivered; their outbox rows published; two rows waiting,
    # the oldest 90 s before the (pinned) scrape; three dead letters, one of them re-driven
    monkeypatch.setattr(metrics, "_now", lambda: NOW)
    history_partitions_ensure(first=NOW.date(), last=NOW.date())  # PostgreSQL: that day's outbox partition
    customer, _ = make_customer()
    for _ in range(3):
        order_place(customer=customer, contact=Contact(name="Jaan Tamm"), shipping_address={"street": "x"},
                    items=[OrderItem(product_id="PRD004", quantity=1)], shipping_method="express",
                    payment_method="credit_card")
    Order.objects.filter(pk=Order.objects.order_by("created_at")[0].pk).update(status="delivered")
    OutboxMessage.objects.update(published_at=NOW - timedelta(seconds=200))
    for age in (90, 30):
        row = OutboxMessage.objects.create(queue="new_orders", type="order.placed", correlation_id="c", payload={})
        OutboxMessage.objects.filter(pk=row.pk).update(created_at=NOW - timedelta(seconds=age),
                                                       next_attempt_at=NOW - timedelta(seconds=age))
    DeadLetter.objects.create(queue="new_orders", reason="invalid", error="x")
    DeadLetter.objects.create(queue="new_orders", reason="invalid", error="x", redriven_at=timezone.now())
    DeadLetter.objects.create(queue="customer_notifications", reason="failed", error="x")
    # when
    response = Client().get("/metrics")
    # then
    assert response.status_code == 200
    lines = set(response.content.decode().splitlines())
    expected = {
        "logistics_outbox_backlog 2.0",
        "logistics_relay_lag_seconds 90.0",
        'logistics_dead_letters{queue="new_orders"} 1.0',
        'logistics_dead_letters{queue="order_confirmations"} 0.0',
        'logistics_dead_letters{queue="shipping_orders"} 0.0',
        'logistics_dead_letters{queue="delivery_updates"} 0.0',
        'logistics_dead_letters{queue="customer_notifications"} 1.0',
        'logistics_orders{status="new"} 2.0',
        'logistics_orders{status="confirmed"} 0.0',
        'logistics_orders{status="delivered"} 1.0',
        'logistics_orders{status="rejected"} 0.0',
    }
    assert expected - lines == set()


def test_empty_outbox_has_no_relay_lag(monkeypatch):
    # given
    monkeypatch.setattr(metrics, "_now", lambda: NOW)
    # when
    text = Client().get("/metrics").content.decode()
    # then
    assert "logistics_outbox_backlog 0.0" in text.splitlines()
    assert "logistics_relay_lag_seconds 0.0" in text.splitlines()


def test_the_worker_hook_counts_handled_and_failed_messages_and_their_latency():
    # given
    queue = "order_confirmations"
    before = {
        "handled": counted("logistics_messages_handled_total", {"queue": queue, "outcome": "handled"}),
        "duplicate": counted("logistics_messages_handled_total", {"queue": queue, "outcome": "duplicate"}),
        "parked": counted("logistics_messages_failed_total", {"queue": queue, "outcome": "parked"}),
        "retry": counted("logistics_messages_failed_total", {"queue": queue, "outcome": "retry"}),
        "count": counted("logistics_message_handler_seconds_count", {"queue": queue}),
        "le_0.05": counted("logistics_message_handler_seconds_bucket", {"queue": queue, "le": "0.05"}),
        "le_0.025": counted("logistics_message_handler_seconds_bucket", {"queue": queue, "le": "0.025"}),
    }
    # when
    message_observed(queue=queue, outcome="handled", seconds=0.03)
    message_observed(queue=queue, outcome="handled", seconds=0.02)
    message_observed(queue=queue, outcome="duplicate", seconds=0.001)
    message_observed(queue=queue, outcome="parked", seconds=0.2)
    # then
    after = {
        "handled": counted("logistics_messages_handled_total", {"queue": queue, "outcome": "handled"}),
        "duplicate": counted("logistics_messages_handled_total", {"queue": queue, "outcome": "duplicate"}),
        "parked": counted("logistics_messages_failed_total", {"queue": queue, "outcome": "parked"}),
        "retry": counted("logistics_messages_failed_total", {"queue": queue, "outcome": "retry"}),
        "count": counted("logistics_message_handler_seconds_count", {"queue": queue}),
        "le_0.05": counted("logistics_message_handler_seconds_bucket", {"queue": queue, "le": "0.05"}),
        "le_0.025": counted("logistics_message_handler_seconds_bucket", {"queue": queue, "le": "0.025"}),
    }
    assert {k: after[k] - before[k] for k in before} == {
        "handled": 2.0, "duplicate": 1.0, "parked": 1.0, "retry": 0.0, "count": 4.0, "le_0.05": 3.0, "le_0.025": 2.0}
    text = Client().get("/metrics").content.decode()
    assert f'logistics_messages_handled_total{{outcome="handled",queue="{queue}"}} {after["handled"]}' in text
    assert f'logistics_message_handler_seconds_count{{queue="{queue}"}} {after["count"]}' in text

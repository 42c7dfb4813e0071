"""Trouble first: the dashboard's banner names what needs a person now, and links to each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import DeadLetter, WorkerHeartbeat
from observability.models import AuditRun
from observability.selectors import trouble
from shop.models import Order
from shop.services import Contact, OrderItem, order_place

pytestmark = pytest.mark.django_db


def heartbeat(*, queue: str, pid: int, beat_ago: float, stopped: bool = False) -> WorkerHeartbeat:
    beat_at = timezone.now() - timedelta(seconds=beat_ago)
    return WorkerHeartbeat.objects.create(
        process=f"host:{pid}:{queue}", kind="consumer", queue=queue, host="host", pid=pid,
        started_at=beat_at - timedelta(minutes=5), beat_at=beat_at, stopped_at=beat_at if stopped else None)


@pytest.fixture
def troubled(catalogue, make_customer):
    """A parked message, a silent worker (and a cleanly stopped one), an order stuck at paid for
    two hours, and an audit that found two gaps."""
    DeadLetter.objects.create(queue="new_orders", message_id="m-parked", type="order.placed",
                              correlation_id="c-1", reason="invalid", error="ValueError: no items")
    silent = heartbeat(queue="delivery_updates", pid=4242, beat_ago=45)
    heartbeat(queue="delivery_updates", pid=4100, beat_ago=600, stopped=True)
    customer, _ = make_customer()
    order = order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                        items=[OrderItem(product_id="PRD004", quantity=1)], shipping_method="express",
                        payment_method="credit_card")
    Order.objects.filter(pk=order.pk).update(status="paid", updated_at=timezone.now() - timedelta(hours=2))
    finished = timezone.now() - timedelta(minutes=3)
    AuditRun.objects.create(started_at=finished, finished_at=finished, grace_seconds=60, messages=10, deliveries=12,
                            gap_count=2, gaps=[], resent=0, stalled_order_count=0, stalled_orders=[])
    return {"order": order, "silent": silent, "audit_at": finished}


def test_the_banner_names_each_trouble_with_a_link_most_urgent_first(broker, staff_client, troubled, settings):
    # given: the shop's clock
    settings.TIME_ZONE = "Europe/Tallinn"
    # when
    data = staff_client.get("/dashboard/data.json").json()
    # then
    order_id = str(troubled["order"].pk)
    beat_at = timezone.localtime(troubled["silent"].beat_at).strftime("%H:%M:%S %Z")
    audit_at = timezone.localtime(troubled["audit_at"]).strftime("%H:%M:%S %Z")
    assert [(t["kind"], t["count"], t["text"]) for t in data["trouble"]] == [
        ("dead_letters", 1, "1 dead letter waiting for a person (new_orders 1)"),
        ("silent_workers", 1, f"1 worker silent for over 30 s: consumer delivery_updates (pid 4242, last heard "
                              f"{beat_at})"),
        ("stalled_orders", 1, f"1 order not moved for over 60 min ({order_id[:8]} at paid)"),
        ("audit_gaps", 2, f"the last audit ({audit_at}) found 2 deliveries nobody accounts for: manage.py audit "
                          f"--repair sends them again"),
    ]
    urls = {t["kind"]: t["url"] for t in data["trouble"]}
    assert urls["dead_letters"] == "/admin/messaging/deadletter/?redriven_at__isempty=1"
    assert urls["silent_workers"] == "#h-workers"
    assert urls["audit_gaps"] == "/admin/observability/auditrun/"
    # each link leads to the rows in question
    assert "m-parked" in staff_client.get(urls["dead_letters"]).content.decode()
    assert order_id in staff_client.get(urls["stalled_orders"]).content.decode()
    assert data["time_zone"] == "Europe/Tallinn"
    assert beat_at.endswith((" EET", " EEST"))


def test_the_page_shows_the_banner_above_everything_else(broker, staff_client, troubled, settings):
    # when
    html = staff_client.get("/dashboard/").content.decode()
    # then: the banner is the first section, one item per trouble, each a link
    assert html.index('<section id="trouble"') < html.index('aria-labelledby="h-stages"')
    assert '<h2 id="h-trouble">Needs a person now</h2>' in html
    assert ('<li data-kind="dead_letters"><a href="/admin/messaging/deadletter/?redriven_at__isempty=1">'
            '1 dead letter waiting for a person (new_orders 1)</a></li>') in html
    assert html.count("<li data-kind=") == 4
    assert f"times in {settings.TIME_ZONE}" in html


def test_a_quiet_system_says_nothing_needs_a_person(broker, staff_client):
    # when
    data = staff_client.get("/dashboard/data.json").json()
    html = staff_client.get("/dashboard/").content.decode()
    # then
    assert data["trouble"] == []
    assert '<section id="trouble" aria-labelledby="h-trouble" aria-live="polite" class="clear">' in html
    assert '<h2 id="h-trouble">Nothing needs a person now</h2>' in html


def test_the_chart_counts_every_final_state(broker, staff_client, catalogue, make_customer):
    # given: one order ending in each final state
    customer, _ = make_customer()
    for status in ("delivered", "rejected", "payment_failed", "cancelled"):
        order = order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                            shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                            items=[OrderItem(product_id="PRD004", quantity=1)], shipping_method="express",
                            payment_method="credit_card")
        Order.objects.filter(pk=order.pk).update(status=status)
        order.history.create(status=status)
    # when
    flow = staff_client.get("/dashboard/data.json").json()["flow"]
    # then
    assert flow["final"] == ["delivered", "rejected", "payment_failed", "cancelled"]
    assert [sum(flow[s]) for s in ("placed", *flow["final"])] == [4, 1, 1, 1, 1]


def test_a_consumer_rabbitmq_still_feeds_without_a_live_worker_is_named(db):
    # given: RabbitMQ counts two consumers of delivery_updates and one of new_orders; one worker
    # of each is live (the other delivery_updates worker is frozen: the broker drops its
    # connection only after two missed AMQP heartbeats, a minute)
    queues = [{"queue": "new_orders", "consumers": 1}, {"queue": "delivery_updates", "consumers": 2}]
    workers = [{"kind": "consumer", "queue": "new_orders", "state": "live"},
               {"kind": "consumer", "queue": "delivery_updates", "state": "live"},
               {"kind": "relay", "queue": "", "state": "live"}]
    data = {"dead_letters": {}, "workers": workers, "broker": {"reachable": True, "queues": queues}, "audit": None}
    # when
    found = trouble(now=timezone.now(), data=data)
    # then
    assert found == [{"kind": "stuck_deliveries", "count": 1, "url": "#h-queues",
                      "text": "delivery_updates: RabbitMQ hands messages to 1 consumer that is not live; what it is "
                              "handed waits unacknowledged until its process ends"}]

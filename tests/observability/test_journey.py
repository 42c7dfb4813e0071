"""An order's journey: every message with its correlation id, who handled it, and each hop's time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from messaging.history import history_partitions_ensure
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from shop.models import OrderStatusChange
from shop.services import Contact, OrderItem, order_place

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
REQUEST_ID = "7f1c0a52-5d0e-4b8e-9a55-1b2c3d4e5f60"


@pytest.fixture(autouse=True)
def _history_of_that_day():
    """PostgreSQL keeps the outbox in day partitions: the day these journeys happened has one."""
    history_partitions_ensure(first=T0.date(), last=T0.date())


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def message(order_id, queue, type_, producer, causation_id, created, published=None) -> OutboxMessage:
    row = OutboxMessage.objects.create(queue=queue, type=type_, correlation_id=str(order_id), producer=producer,
                                       causation_id=causation_id, payload={"order_id": str(order_id)})
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=created, published_at=published)
    row.refresh_from_db()
    return row


def handled(row: OutboxMessage, consumer: str, when: datetime) -> None:
    processed = ProcessedMessage.objects.create(consumer=consumer, message_id=str(row.message_id))
    ProcessedMessage.objects.filter(pk=processed.pk).update(processed_at=when)


@pytest.fixture
def journey(catalogue, make_customer):
    """A known journey: placed (by an HTTP request) -> confirmed; picked -> shipment requested;
    the first delivery update written but not yet published. Times in ms after T0."""
    customer, _ = make_customer()
    order = order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                        items=[OrderItem(product_id="PRD001", quantity=1)], shipping_method="express",
                        payment_method="credit_card")
    placed = OutboxMessage.objects.get(correlation_id=str(order.id))
    OutboxMessage.objects.filter(pk=placed.pk).update(causation_id=REQUEST_ID, created_at=at(0), published_at=at(50))
    placed.refresh_from_db()
    handled(placed, "warehouse", at(80))
    confirmed = message(order.id, "order_confirmations", "order.confirmed", "warehouse", str(placed.message_id),
                        at(95), at(130))
    handled(confirmed, "shop", at(160))
    requested = message(order.id, "shipping_orders", "shipment.requested", "warehouse", str(placed.message_id),
                        at(2100), at(2140))
    handled(requested, "transport", at(2200))
    update = message(order.id, "delivery_updates", "shipment.status_changed", "transport",
                     str(requested.message_id), at(2205))
    # noise: another order's message, and a dead letter of this one
    message(uuid.uuid4(), "new_orders", "order.placed", "shop", "", at(10), at(20))
    DeadLetter.objects.create(queue="delivery_updates", message_id="m-bad", type="shipment.status_changed",
                              correlation_id=str(order.id), reason="invalid", error="ValueError: bad stage")
    OrderStatusChange.objects.filter(order=order, status="new").update(at=at(0))
    return {"order": order, "rows": [placed, confirmed, requested, update]}


def test_journey_json_lists_every_hop_with_its_times(staff_client, journey):
    # given
    order = journey["order"]
    placed, confirmed, requested, update = journey["rows"]
    # when
    response = staff_client.get(f"/dashboard/orders/{order.id}/journey.json")
    # then
    assert response.status_code == 200
    data = response.json()
    assert (data["order_id"], data["status"], data["total_ms"]) == (str(order.id), "new", 2205.0)
    hops = [(h["index"], h["queue"], h["type"], h["producer"], [c["consumer"] for c in h["handled_by"]],
             h["caused_by"], h["cause_to_write_ms"], h["write_to_publish_ms"], h["publish_to_handle_ms"])
            for h in data["hops"]]
    assert hops == [
        # an event: its routing key is its type (it reaches new_orders and support_requests)
        (1, "order.placed", "order.placed", "shop", ["warehouse"], "request", None, 50.0, 30.0),
        (2, "order_confirmations", "order.confirmed", "warehouse", ["shop"], "message", 15.0, 35.0, 30.0),
        (3, "shipping_orders", "shipment.requested", "warehouse", ["transport"], "message", 2020.0, 40.0, 60.0),
        (4, "delivery_updates", "shipment.status_changed", "transport", [], "message", 5.0, None, None),
    ]
    assert data["hops"][0] == {
        "index": 1,
        "message_id": str(placed.message_id),
        "queue": "order.placed",
        "type": "order.placed",
        "producer": "shop",
        "causation_id": REQUEST_ID,
        "caused_by": "request",
        "handled_by": [{"consumer": "warehouse", "processed_at": "2026-01-05T10:00:00.080000+00:00"}],
        "created_at": "2026-01-05T10:00:00+00:00",
        "due_at": None,
        "published_at": "2026-01-05T10:00:00.050000+00:00",
        "handled_at": "2026-01-05T10:00:00.080000+00:00",
        "timer_wait_ms": None,
        "write_to_publish_ms": 50.0,
        "publish_to_handle_ms": 30.0,
        "cause_to_write_ms": None,
        "attempts": 0,
        "last_error": None,
    }
    assert data["hops"][3]["causation_id"] == str(requested.message_id)
    assert (data["hops"][3]["published_at"], data["hops"][3]["handled_at"]) == (None, None)
    assert data["status_history"] == [
        {"status": "new", "label": "new", "at": "2026-01-05T10:00:00+00:00", "note": "order placed"}]
    assert [(d["queue"], d["reason"], d["error"]) for d in data["dead_letters"]] == [
        ("delivery_updates", "invalid", "ValueError: bad stage")]


def test_journey_page_shows_the_hops_for_staff(staff_client, journey):
    # given
    order = journey["order"]
    # when
    response = staff_client.get(f"/dashboard/orders/{order.id}/journey/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<tr data-message-id=") == 4
    for text in ("order.confirmed", "warehouse → shop", "2020.0 ms", "35.0 ms", "not published yet",
                 "ValueError: bad stage"):
        assert text in page
    assert "Jaan" not in page
    assert "Narva" not in page


def test_unknown_order_has_no_journey(staff_client):
    # when
    json_response = staff_client.get(f"/dashboard/orders/{uuid.uuid4()}/journey.json")
    page = staff_client.get("/dashboard/orders/not-an-id/journey/")
    # then
    assert json_response.status_code == 404
    assert json_response.json() == {"detail": "Not found."}
    assert page.status_code == 404


def test_the_order_admin_page_links_to_the_journey(staff_client, journey):
    # given
    order = journey["order"]
    # when
    response = staff_client.get(f"/admin/shop/order/{order.id}/change/")
    # then
    assert response.status_code == 200
    assert (f'<a href="/dashboard/orders/{order.id}/journey/" id="order-journey-link">Journey across systems</a>'
            in response.content.decode())


def test_a_timers_wait_is_drawn_as_waiting_not_as_relay_time(staff_client, journey, settings):
    # given: a timer written at 3 s, due 2 s later, published 40 ms after it was due; the shop's clock
    settings.TIME_ZONE = "Europe/Tallinn"
    order = journey["order"]
    timer = message(order.id, "payment_requests", "payment.charge_due", "payments", "", at(3000), at(5040))
    OutboxMessage.objects.filter(pk=timer.pk).update(due_at=at(5000))
    # when
    data = staff_client.get(f"/dashboard/orders/{order.id}/journey.json").json()
    page = staff_client.get(f"/dashboard/orders/{order.id}/journey/").content.decode()
    # then: the wait is the timer's, the relay's time only what came after it was due
    [hop] = [h for h in data["hops"] if h["type"] == "payment.charge_due"]
    assert (hop["due_at"], hop["timer_wait_ms"], hop["write_to_publish_ms"]) == (
        "2026-01-05T10:00:05+00:00", 2000.0, 40.0)
    row = page[page.index(f'<tr data-message-id="{timer.message_id}">'):]
    row = row[:row.index("</tr>")]
    assert '<span title="a timer: due 2026-01-05T10:00:05+00:00">2000.0 ms</span>' in row
    assert '<td class="num relay-time">40.0 ms</td>' in row
    # the bar: waiting from written (3 s of 5.04 s) to due, the relay from due to published
    assert '<span class="wait" style="left:59.52%;width:39.69%"></span>' in row
    assert '<span class="relay" style="left:99.21%;width:0.79%"></span>' in row
    # and one clock, named: the site's time zone (Tallinn, UTC+2 in January), to the millisecond
    assert '<span id="time-zone">times in Europe/Tallinn</span>' in page
    assert '<time datetime="2026-01-05T10:00:03+00:00">12:00:03.000</time>' in row

"""/dashboard/ and /dashboard/data.json: who may see them, and what they show for a known state."""

from __future__ import annotations

from datetime import timedelta

import pika
import pytest
from django.test import Client
from django.utils import timezone

from messaging.models import DeadLetter, OutboxMessage
from observability.selectors import flow_series
from shop.models import Order, OrderStatusChange
from shop.services import Contact, OrderItem, order_place
from transport.models import Vehicle

pytestmark = pytest.mark.django_db

STAGES = ["new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered", "rejected",
          "payment_failed", "cancelled"]
WORK_QUEUES = ["new_orders", "order_confirmations", "shipping_orders", "delivery_updates", "customer_notifications",
               "payment_requests", "payment_results", "fulfilment_requests", "support_requests", "sim_actors"]


def place(customer, *, status: str = "new") -> Order:
    order = order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                        items=[OrderItem(product_id="PRD004", quantity=1)], shipping_method="express",
                        payment_method="credit_card")
    if status != "new":
        Order.objects.filter(pk=order.pk).update(status=status)
        OrderStatusChange.objects.create(order=order, status=status)
    return order


def status_change_at(order: Order, status: str, at) -> None:
    change, _ = OrderStatusChange.objects.get_or_create(order=order, status=status)
    OrderStatusChange.objects.filter(pk=change.pk).update(at=at)


# --- who may look ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/dashboard/", "/dashboard/orders/0b7c6c7e-0000-4000-8000-000000000001/journey/"])
def test_anonymous_is_sent_to_the_admin_login(path):
    # when
    response = Client().get(path)
    # then
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


def test_a_customer_who_is_not_staff_is_sent_to_the_admin_login(customer_web_client):
    # when
    response = customer_web_client.get("/dashboard/")
    # then
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/dashboard/"


@pytest.mark.parametrize("path", ["/dashboard/data.json", "/dashboard/orders/x/journey.json"])
def test_json_endpoints_refuse_anonymous_customers_and_api_tokens(path, customer_web_client, customer_client):
    # when
    anonymous = Client().get(path)
    customer = customer_web_client.get(path)
    token = customer_client.get(path)
    # then
    for response in (anonymous, customer, token):
        assert response.status_code == 403
        assert response.json() == {"detail": "Staff only; log in at /admin/login/."}


def test_staff_sees_the_dashboard_page(staff_client, catalogue, broker):
    # when
    response = staff_client.get("/dashboard/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="flow-chart"' in page
    assert 'id="throughput-chart"' in page
    assert '<span class="n" id="stage-new">0</span>' in page
    assert '<p id="broker-down" class="warn" hidden>' in page
    assert 'id="dashboard-config"' in page
    assert '"dataUrl": "/dashboard/data.json"' in page
    assert "<script src=" not in page  # no CDN, no build: the page carries its own script
    assert response["Cache-Control"].startswith("max-age=0")


# --- what it shows -------------------------------------------------------------------------------
def test_data_shows_stages_outbox_dead_letters_vehicles_queues_and_latest_orders(
        staff_client, catalogue, make_customer, broker):
    # given: five orders in four stages
    customer, _ = make_customer()
    orders = [place(customer), place(customer), place(customer, status="confirmed"),
              place(customer, status="in_transit"), place(customer, status="delivered")]
    # three of their five outbox rows published, the oldest waiting one 40 s old
    rows = list(OutboxMessage.objects.order_by("id"))
    OutboxMessage.objects.filter(pk__in=[r.pk for r in rows[:3]]).update(published_at=timezone.now())
    forty_ago = timezone.now() - timedelta(seconds=40)  # written (and due) 40 s ago
    OutboxMessage.objects.filter(pk=rows[3].pk).update(created_at=forty_ago, next_attempt_at=forty_ago)
    OutboxMessage.objects.filter(pk=rows[4].pk).update(last_error="unroutable")
    # dead letters: two on new_orders (one already re-driven), one on delivery_updates
    for queue, redriven in (("new_orders", None), ("new_orders", timezone.now()), ("delivery_updates", None)):
        DeadLetter.objects.create(queue=queue, reason="invalid", error="x", redriven_at=redriven)
    Vehicle.objects.filter(code="VEH002").update(status="busy")
    # one message waiting in new_orders, as the broker counts it
    broker.confirm_delivery()
    broker.basic_publish("", "new_orders", b"{}", pika.BasicProperties(delivery_mode=2), mandatory=True)
    # when
    response = staff_client.get("/dashboard/data.json")
    # then
    assert response.status_code == 200
    data = response.json()
    assert [(s["status"], s["count"]) for s in data["stages"]] == list(
        zip(STAGES, [2, 1, 0, 0, 1, 0, 1, 0, 0, 0], strict=True))
    assert data["stages"][5]["label"] == "out for delivery"
    assert data["outbox"]["unpublished"] == 2
    assert data["outbox"]["failing"] == 1
    assert 40 <= data["outbox"]["oldest_age_seconds"] < 45
    assert data["dead_letters"] == {**dict.fromkeys(WORK_QUEUES, 0), "new_orders": 1, "delivery_updates": 1}
    assert data["vehicles"] == {"busy": 1, "free": 2, "maintenance": 0}
    assert data["broker"] == {"reachable": True, "error": None, "queues": [
        {"queue": q, "declared": True, "ready": 1 if q == "new_orders" else 0, "consumers": 0, "retrying": 0, "dlq": 0}
        for q in WORK_QUEUES]}
    assert [(o["order_id"], o["status"]) for o in data["latest_orders"]] == [
        (str(o.id), s)
        for o, s in zip(reversed(orders), ["delivered", "in_transit", "confirmed", "new", "new"], strict=True)]
    assert set(data["latest_orders"][0]) == {"order_id", "status", "status_label", "shipment_id", "created_at",
                                             "updated_at"}  # no names, e-mails or addresses
    assert "Jaan" not in response.content.decode()
    assert data["flow"]["minutes"] == 5
    assert len(data["flow"]["times"]) == 60
    assert data["flow"]["placed"][-1] + data["flow"]["placed"][-2] == 5


def test_broker_down_does_not_break_the_dashboard(staff_client, settings, socket_closed_port):
    # given
    settings.RABBITMQ_URL = f"amqp://guest:guest@127.0.0.1:{socket_closed_port}/%2F"
    # when
    page = staff_client.get("/dashboard/")
    data = staff_client.get("/dashboard/data.json")
    # then
    assert page.status_code == 200
    assert '<p id="broker-down" class="warn">broker unreachable</p>' in page.content.decode()
    assert data.status_code == 200
    assert data.json()["broker"] == {"reachable": False, "error": "ConnectionRefusedError", "queues": []}


def test_flow_series_replays_the_status_history(catalogue, make_customer):
    # given: now pinned; a 2-minute window is 60 samples 2 s apart (the last one is now)
    now = timezone.now()
    customer, _ = make_customer()
    a, b, c, d = (place(customer) for _ in range(4))
    status_change_at(a, "new", now - timedelta(seconds=130))        # before the window
    status_change_at(a, "confirmed", now - timedelta(seconds=61))
    status_change_at(b, "new", now - timedelta(seconds=30))
    status_change_at(c, "new", now - timedelta(seconds=200))        # done before the window: left out
    status_change_at(c, "delivered", now - timedelta(seconds=150))
    status_change_at(d, "new", now - timedelta(seconds=90))
    status_change_at(d, "rejected", now - timedelta(seconds=10))
    status_change_at(a, "delivered", now + timedelta(seconds=5))    # the future: not yet
    # when
    flow = flow_series(now=now, minutes=2)
    # then
    assert flow["step_seconds"] == 2.0
    assert flow["times"][-1] == now.isoformat()
    assert flow["times"][0] == (now - timedelta(seconds=118)).isoformat()
    assert flow["in_flight"]["new"] == [1] * 14 + [2] * 15 + [1] * 15 + [2] * 10 + [1] * 6
    assert flow["in_flight"]["confirmed"] == [0] * 29 + [1] * 31
    for stage in ("picked_up", "in_transit", "out_for_delivery"):
        assert flow["in_flight"][stage] == [0] * 60
    assert flow["placed"] == [1 if i in (14, 44) else 0 for i in range(60)]
    assert flow["rejected"] == [1 if i == 54 else 0 for i in range(60)]
    assert flow["delivered"] == [0] * 60

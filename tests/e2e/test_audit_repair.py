"""A message lost on purpose: the audit finds exactly that delivery, --repair brings the order home."""

import copy
from io import StringIO

import pytest
from django.core.management import call_command

from messaging.models import ProcessedMessage
from shop.models import Order
from simulation.demo_data import SEED_ORDER
from tests.harness import WORKERS, wait_until

pytestmark = pytest.mark.e2e


def audit(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("audit", "--grace", "0", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()  # SystemExit(None) is a 0
    return 0, out.getvalue()


def test_a_purged_message_is_found_and_repair_delivers_the_order(system, broker, catalogue, customer_client):
    # given: the warehouse's worker is down, so the new order's order.placed waits in new_orders
    system.start_all([w for w in WORKERS if w != "new_orders"])
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD003", "quantity": 1}]
    order_id = customer_client.post("/api/orders/", body, format="json").json()["order_id"]
    wait_until(lambda: broker.queue_declare(queue="new_orders", passive=True).method.message_count == 1,
               timeout=30, what="order.placed waiting in new_orders")
    wait_until(lambda: ProcessedMessage.objects.filter(consumer="support.support_requests").exists(),
               timeout=30, what="support's copy handled")
    # when: the message is lost (the queue purged) and the worker comes back
    broker.queue_purge("new_orders")
    system.start("new_orders")
    # then: nothing moves the order; the audit names exactly that delivery
    status, out = audit()
    assert status == 1, out
    gaps = [line for line in out.splitlines() if line.startswith("gap: ")]
    assert len(gaps) == 1, out
    assert "order.placed" in gaps[0]
    assert f"order={order_id}" in gaps[0]
    assert "queue=new_orders" in gaps[0]
    assert Order.objects.get(pk=order_id).status == "new"
    # when: repaired
    status, out = audit("--repair")
    # then: sent once, and the order goes all the way; the audit is clean at the end
    assert "1 message(s) sent again" in out, out
    try:
        wait_until(lambda: Order.objects.get(pk=order_id).status == "delivered", timeout=90, what="delivered")
        wait_until(lambda: audit()[0] == 0, timeout=30, what="a clean audit")
    except AssertionError:
        print(system.log_tail())
        raise
    print(f"lost order.placed of {order_id}: found by the audit, resent, order delivered")

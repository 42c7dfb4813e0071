"""manage.py audit: every published message is handled or parked by each queue it reached."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from messaging.audit import deliveries_unaccounted
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from observability import metrics
from observability.models import AuditRun
from shop.models import Order

pytestmark = pytest.mark.django_db

LONG_AGO = timedelta(minutes=10)


def published(*, type: str, exchange: str = "logistics.events", queue: str | None = None,
              ago: timedelta = LONG_AGO) -> OutboxMessage:
    order_id = str(uuid.uuid4())
    return OutboxMessage.objects.create(
        exchange=exchange, queue=queue or type, type=type, correlation_id=order_id, producer="test",
        payload={"order_id": order_id}, published_at=timezone.now() - ago)


def processed(consumer: str, row: OutboxMessage) -> None:
    ProcessedMessage.objects.create(consumer=consumer, message_id=str(row.message_id))


def run_audit(*args: str) -> tuple[int, str]:
    from io import StringIO

    out = StringIO()
    try:
        call_command("audit", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code), out.getvalue()
    return 0, out.getvalue()


def test_an_event_handled_by_every_subscriber_is_no_gap_and_one_missing_is():
    # given: order.placed reaches new_orders (warehouse) and support_requests (support)
    complete = published(type="order.placed")
    processed("warehouse.new_orders", complete)
    processed("support.support_requests", complete)
    half = published(type="order.placed")
    processed("support.support_requests", half)
    # when
    findings = deliveries_unaccounted(grace=timedelta(seconds=60))
    # then: the warehouse never handled the second one
    assert (findings.messages, findings.deliveries) == (2, 4)
    assert [(g.message_id, g.queue, g.type, g.order_id) for g in findings.gaps] == [
        (str(half.message_id), "new_orders", "order.placed", half.correlation_id)]


def test_a_parked_message_is_accounted_for():
    # given: payments never processed the request but parked it
    row = published(type="payment.requested", exchange="logistics", queue="payment_requests")
    DeadLetter.objects.create(queue="payment_requests", message_id=str(row.message_id), type=row.type,
                              reason=DeadLetter.Reason.INVALID, error="bad amount")
    # when
    findings = deliveries_unaccounted(grace=timedelta(seconds=60))
    # then
    assert (findings.deliveries, findings.gaps) == (1, [])


def test_messages_within_the_grace_or_unpublished_are_not_checked_yet():
    # given
    published(type="order.paid", exchange="logistics", queue="fulfilment_requests", ago=timedelta(seconds=5))
    OutboxMessage.objects.create(queue="fulfilment_requests", type="order.paid", correlation_id="x",
                                 payload={"order_id": "x"})
    # when
    findings = deliveries_unaccounted(grace=timedelta(seconds=60))
    # then
    assert (findings.messages, findings.gaps) == (0, [])
    assert len(deliveries_unaccounted(grace=timedelta(0)).gaps) == 1


def test_the_command_lists_each_gap_exits_1_and_records_the_run_for_the_dashboard_and_metrics(
        django_user_model, make_customer):
    # given: one delivery missing, one order stuck for two hours
    row = published(type="order.confirmed")
    order_id = uuid.uuid4()
    customer, _ = make_customer()
    stuck = Order.objects.create(id=order_id, customer=customer, contact_name="A", contact_email="a@example.com",
                                 shipping_address={}, shipping_method="standard", payment_method="credit_card",
                                 total=1, currency="EUR")
    Order.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    # when
    status, out = run_audit("--grace", "30")
    # then
    assert status == 1
    assert f"gap: {row.message_id} order.confirmed order={row.correlation_id} queue=order_confirmations" in out
    assert f"stalled: order={order_id} status=new" in out
    run = AuditRun.objects.get()
    assert (run.gap_count, run.stalled_order_count, run.grace_seconds) == (1, 1, 30)
    assert run.gaps[0]["queue"] == "order_confirmations"
    # the dashboard's data and /metrics show the last run
    staff = django_user_model.objects.create_user("ops", password="pw-audit-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get("/dashboard/data.json").json()["audit"]["gap_count"] == 1
    text = metrics.metrics_render()[0].decode()
    assert "logistics_audit_gaps 1.0" in text
    assert "logistics_audit_stalled_orders 1.0" in text


def test_a_clean_audit_exits_0():
    # given
    row = published(type="order.confirmed")
    processed("shop.order_confirmations", row)
    # when
    status, out = run_audit()
    # then
    assert status == 0
    assert "0 gap(s)" in out


def test_a_bad_grace_is_refused():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--grace"):
        call_command("audit", "--grace", "-1")

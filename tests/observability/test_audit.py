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
        return int(exc.code or 0), out.getvalue()  # SystemExit(None) is a 0
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


def test_an_event_parked_by_one_subscriber_and_lost_to_another_is_a_gap_for_the_other():
    # given: order.placed reaches new_orders and support_requests; the warehouse parked it, support never got it
    row = published(type="order.placed")
    DeadLetter.objects.create(queue="new_orders", message_id=str(row.message_id), type=row.type,
                              reason=DeadLetter.Reason.FAILED, error="boom")
    # when
    findings = deliveries_unaccounted(grace=timedelta(seconds=60))
    # then: the dead letter accounts for the warehouse's delivery only
    assert [(g.message_id, g.queue) for g in findings.gaps] == [(str(row.message_id), "support_requests")]


def test_a_run_checks_what_is_new_and_a_full_check_finds_a_gap_behind_the_watermark():
    # given: a clean first run (it checks everything: there is no earlier one)
    old = published(type="order.confirmed")
    processed("shop.order_confirmations", old)
    assert run_audit("--grace", "0")[0] == 0
    first = AuditRun.objects.get()
    assert (first.full, first.messages) == (True, 1)
    # and then: the old message's record is lost (behind the watermark), a new message is published and lost
    ProcessedMessage.objects.filter(message_id=str(old.message_id)).delete()
    new = published(type="order.confirmed", ago=timedelta(0))
    # when: the next run
    status, out = run_audit("--grace", "0")
    # then: it checks what was published since, and finds the new gap only
    assert status == 1
    assert [line for line in out.splitlines() if line.startswith("gap: ")] == [
        f"gap: {new.message_id} order.confirmed order={new.correlation_id} queue=order_confirmations age=0s"]
    second = AuditRun.objects.latest()
    assert (second.full, second.messages, second.open_gaps) == (False, 1, [[new.pk, "order_confirmations"]])
    # when: a full check
    status, out = run_audit("--grace", "0", "--full")
    # then: both gaps
    assert status == 1
    assert AuditRun.objects.latest().gap_count == 2
    assert f"gap: {old.message_id} order.confirmed" in out
    assert f"gap: {new.message_id} order.confirmed" in out


def test_a_gap_stays_open_in_the_next_runs_until_it_is_handled():
    # given: a run that found a gap
    row = published(type="order.confirmed")
    assert run_audit("--grace", "0")[0] == 1
    # when: the next run, nothing published since
    status, _ = run_audit("--grace", "0")
    # then: still a gap (the run checks the gaps the last one left open)
    assert (status, AuditRun.objects.latest().messages) == (1, 1)
    # when: it is handled at last
    processed("shop.order_confirmations", row)
    status, out = run_audit("--grace", "0")
    # then
    assert status == 0, out
    assert AuditRun.objects.latest().open_gaps == []

"""Timers: messages with a due time, sent by the relay when due, handled by a queue worker."""

import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from contracts.messages import PaymentChargeDue, PaymentRequested
from messaging.consumer import QueueWorker
from messaging.lease import outbox_lease_sql, outbox_next_due
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.outbox import outbox_emit
from messaging.relay import OutboxRelay
from messaging.timers import timer_cancel, timer_set

pytestmark = pytest.mark.django_db(transaction=True)


def charge_timer(after: float, order_id: str | None = None) -> OutboxMessage:
    order_id = order_id or str(uuid.uuid4())
    with transaction.atomic():
        return timer_set(PaymentChargeDue(order_id=uuid.UUID(order_id), payment_id=uuid.uuid4()),
                         queue="payment_requests", correlation_id=order_id, producer="payments", after=after)


def payment_requested() -> PaymentRequested:
    return PaymentRequested(order_id=uuid.uuid4(), request_number=1, amount=Decimal("19.99"), currency="EUR",
                            method="credit_card")


def relay_once() -> int:
    return OutboxRelay(install_signal_handlers=False).run(once=True).published


def test_a_timer_is_an_outbox_row_with_its_due_time_written_in_the_callers_transaction(broker):
    # when: the transaction that sets it rolls back
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the raise rolls the transaction back
        charge_timer(after=0)
        raise RuntimeError("the change that asked for it failed")
    # then: no timer
    assert not OutboxMessage.objects.exists()
    # when: it commits
    before = timezone.now()
    timer = charge_timer(after=30)
    # then
    timer.refresh_from_db()
    assert before + timedelta(seconds=30) <= timer.due_at <= timezone.now() + timedelta(seconds=30)
    assert timer.next_attempt_at == timer.due_at
    assert timer.published_at is None
    assert outbox_next_due() == timer.due_at
    # outside a transaction a timer cannot be set
    with pytest.raises(RuntimeError):
        timer_set(PaymentChargeDue(order_id=uuid.uuid4(), payment_id=uuid.uuid4()), queue="payment_requests",
                  correlation_id="x", producer="p", after=0)


def test_the_relay_sends_a_timer_when_it_is_due_and_not_before(broker):
    # given: one timer due in 1.5 s and a message for now
    timer = charge_timer(after=1.5)
    with transaction.atomic():
        now_row = outbox_emit(payment_requested(), queue="payment_requests", correlation_id="o", producer="shop")
    relay = OutboxRelay(install_signal_handlers=False)
    # when / then: only the message for now goes out
    assert relay.run(once=True).published == 1
    timer.refresh_from_db()
    assert timer.published_at is None
    due_in = OutboxRelay(install_signal_handlers=False).next_due_in()
    assert 0.5 < due_in <= 1.5
    method, properties, _ = broker.basic_get("payment_requests", auto_ack=True)
    assert properties.message_id == str(now_row.message_id)
    assert broker.basic_get("payment_requests")[0] is None
    # when: it is due
    time.sleep(max(due_in, 0) + 0.05)
    assert relay_once() == 1
    # then: published after its due time, with the usual envelope
    timer.refresh_from_db()
    assert timer.published_at >= timer.due_at
    method, properties, body = broker.basic_get("payment_requests", auto_ack=True)
    assert (properties.message_id, properties.type) == (str(timer.message_id), "payment.charge_due")
    assert json.loads(body) == timer.payload
    assert OutboxRelay(install_signal_handlers=False).next_due_in() is None


def test_a_running_relay_wakes_up_for_the_due_time(broker):
    # given: a relay running (idle, LISTENing; its fallback poll is far longer than the timer)
    relay = OutboxRelay(install_signal_handlers=False)
    thread = threading.Thread(target=relay.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        # when: a timer due in 0.8 s
        timer = charge_timer(after=0.8)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            timer.refresh_from_db()
            if timer.published_at is not None:
                break
            time.sleep(0.02)
    finally:
        relay.stop()
        thread.join(timeout=10)
    # then: sent when due, within a fraction of a second
    assert timer.published_at is not None
    lateness = (timer.published_at - timer.due_at).total_seconds()
    assert 0 <= lateness < 0.5, lateness


def test_timers_not_due_are_not_read_by_a_lease(broker):
    # given: 2,000 timers due tomorrow, set before a message for now
    tomorrow = timezone.now() + timedelta(days=1)
    OutboxMessage.objects.bulk_create([
        OutboxMessage(queue="payment_requests", type="payment.charge_due", correlation_id=str(i), producer="p",
                      payload={}, due_at=tomorrow, next_attempt_at=tomorrow)
        for i in range(2000)
    ])
    with transaction.atomic():
        outbox_emit(payment_requested(), queue="payment_requests", correlation_id="o", producer="shop")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxMessage._meta.db_table}")
    # when
    sql, params = outbox_lease_sql(limit=5000, now=timezone.now())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    # then: the lease reads one entry of the due index (the timers of tomorrow are not scanned);
    # on a partitioned outbox (PostgreSQL) it reads each day partition's copy of that index
    scans, nodes = [], [plan[0]["Plan"]]  # psycopg reads the json column
    while nodes:
        node = nodes.pop()
        if "Index Name" in node:
            scans.append((node["Index Name"], node["Actual Rows"]))
        nodes += node.get("Plans", [])
    assert scans
    assert all(name == "outbox_due_idx" or name.endswith("_next_attempt_at_id_idx") for name, _ in scans)
    assert sum(rows for _, rows in scans) == 1
    assert relay_once() == 1
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 2000
    assert 23 * 3600 < OutboxRelay(install_signal_handlers=False).next_due_in() <= 24 * 3600


def test_a_cancelled_timer_is_never_sent_and_a_sent_one_is_not_touched(broker):
    order_id = str(uuid.uuid4())
    sent = charge_timer(after=0, order_id=order_id)
    assert relay_once() == 1
    waiting = charge_timer(after=0.2, order_id=order_id)
    other_order = charge_timer(after=0.2)
    # when
    with transaction.atomic():
        cancelled = timer_cancel(PaymentChargeDue, correlation_id=order_id)
    # then
    assert cancelled == 1
    assert not OutboxMessage.objects.filter(pk=waiting.pk).exists()
    assert OutboxMessage.objects.get(pk=sent.pk).published_at is not None
    time.sleep(0.3)
    assert relay_once() == 1  # the other order's timer only
    assert OutboxMessage.objects.get(pk=other_order.pk).published_at is not None


def test_a_due_timer_is_handled_once_by_a_queue_worker_and_a_bad_one_is_parked(broker, catalogue):
    # given: a charge timer for a payment that does not exist (the handler changes nothing),
    # sent twice (a redelivery), and one whose payload breaks its contract
    timer = charge_timer(after=0)
    # (written around its contract, as an older producer might have)
    bad = OutboxMessage.objects.create(queue="payment_requests", type="payment.charge_due", correlation_id="o",
                                       producer="payments", payload={"order_id": "not-a-uuid"},
                                       due_at=timezone.now())
    assert relay_once() == 2
    OutboxMessage.objects.filter(pk=timer.pk).update(published_at=None)  # sent again
    assert relay_once() == 1
    # when
    stats = QueueWorker("payment_requests", prefetch=10, install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then
    assert ProcessedMessage.objects.filter(message_id=str(timer.message_id)).count() == 1
    assert (stats.handled, stats.duplicates, stats.parked) == (1, 1, 1)
    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.type, letter.reason) == (str(bad.message_id), "payment.charge_due", "invalid")

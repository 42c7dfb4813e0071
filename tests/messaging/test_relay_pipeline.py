"""The relay on a backlog (batch after batch) and on a live system (woken by NOTIFY), against the
real RabbitMQ and PostgreSQL."""

import threading
import time
import uuid
from datetime import timedelta

import pika
import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from contracts.messages import OrderPlaced
from messaging.lease import outbox_lease
from messaging.models import OutboxMessage
from messaging.outbox import OUTBOX_NOTIFY_CHANNEL, outbox_emit
from messaging.relay import OutboxRelay
from tests.messaging.examples import order_placed_payload

pytestmark = pytest.mark.django_db(transaction=True)


def emit(order_id: str | None = None) -> OutboxMessage:
    order_id = order_id or str(uuid.uuid4())
    return outbox_emit(OrderPlaced.model_validate(order_placed_payload(order_id)), queue="new_orders",
                       correlation_id=order_id, producer="shop")


def backlog(rows: int) -> list[OutboxMessage]:
    """``rows`` outbox rows for a handful of orders, interleaved, committed together."""
    orders = [str(uuid.uuid4()) for _ in range(7)]
    with transaction.atomic():
        return [emit(orders[i % len(orders)]) for i in range(rows)]


def queue_depth(broker, queue: str = "new_orders") -> int:
    return broker.queue_declare(queue, passive=True).method.message_count


def received_message_ids(broker, count: int, queue: str = "new_orders") -> list[str]:
    ids: list[str] = []
    for _ in range(count):
        method, properties, _body = broker.basic_get(queue, auto_ack=True)
        assert method is not None, f"only {len(ids)} of {count} messages on {queue}"
        ids.append(properties.message_id)
    return ids


def listener() -> psycopg.Connection:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    conn = psycopg.connect(**params, autocommit=True)
    conn.execute(f"LISTEN {OUTBOX_NOTIFY_CHANNEL}")
    return conn


def notifications(conn: psycopg.Connection, wait: float = 0.5) -> int:
    return len(list(conn.notifies(timeout=wait)))


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY and row locks are PostgreSQL's")


@pytest.fixture
def listen_fallback(settings):
    """The relay's fallback poll made long: within a test only a NOTIFY can wake it."""
    settings.MESSAGING = {**settings.MESSAGING, "RELAY_LISTEN_FALLBACK_SECONDS": 60.0}


def test_inserting_outbox_rows_notifies_once_per_transaction_and_only_on_commit(postgresql):
    # given
    conn = listener()
    try:
        # when: a transaction writes three rows (two statements)
        with transaction.atomic():
            emit()
            OutboxMessage.objects.bulk_create([OutboxMessage(queue="new_orders", type="t", correlation_id="c",
                                                             payload={}) for _ in range(2)])
            before_commit = notifications(conn, wait=0.2)
        after_commit = notifications(conn)
        # and a transaction that rolls back
        with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the raise rolls the transaction back
            emit()
            raise RuntimeError("rolled back")
        after_rollback = notifications(conn, wait=0.2)
    finally:
        conn.close()
    # then
    assert (before_commit, after_commit, after_rollback) == (0, 1, 0)


def test_a_backlog_goes_out_in_id_order_across_batches_and_every_row_is_marked(broker, postgresql):
    # given: 230 rows of seven orders; batches of 50
    rows = backlog(230)
    # when
    stats = OutboxRelay(batch_size=50, install_signal_handlers=False).run(once=True)
    # then: five batches, every row once, in id order (so in order within each order)
    assert (stats.published, stats.failed, stats.batches) == (230, 0, 5)
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
    assert received_message_ids(broker, 230) == [str(row.message_id) for row in rows]
    assert queue_depth(broker) == 0


def unlocked_unpublished() -> int:
    """Unpublished rows no relay holds a lease on (seen from a connection of the test's own; the probe
    locks the rows it counts, for a moment)."""
    with transaction.atomic():
        return len(OutboxMessage.objects.filter(published_at__isnull=True).select_for_update(skip_locked=True)
                   .values_list("id", flat=True))


class _BreaksInSecondBatch:
    """The relay's publisher: the first batch goes out whole; in the second the connection is
    lost after ``after`` messages were confirmed."""

    def __init__(self, publisher, after: int) -> None:
        self._publisher, self._after, self.batches = publisher, after, 0

    def publish_batch(self, messages):
        self.batches += 1
        if self.batches == 1:
            return self._publisher.publish_batch(messages)
        result = self._publisher.publish_batch(list(messages)[: self._after])
        result.error = pika.exceptions.StreamLostError("Stream connection lost (simulated)")
        return result

    def __getattr__(self, name):
        return getattr(self._publisher, name)


def test_a_connection_lost_mid_backlog_marks_only_confirmed_rows_and_holds_no_lease(broker, postgresql):
    # given: three batches of ten; the connection breaks after four messages of the second
    rows = backlog(25)
    relay = OutboxRelay(batch_size=10, install_signal_handlers=False)
    relay._publisher = _BreaksInSecondBatch(relay._ensure_publisher(), after=4)
    # when
    with pytest.raises(pika.exceptions.StreamLostError):
        relay.drain()
    marked = list(OutboxMessage.objects.filter(published_at__isnull=False).values_list("id", flat=True))
    free = unlocked_unpublished()
    relay._close_publisher()
    on_broker = queue_depth(broker)
    # then: exactly the confirmed rows are marked; no lease outlives the error, and another
    # relay sends the rest
    assert marked == [row.id for row in rows[:14]]
    assert free == 11
    assert on_broker == 14
    stats = OutboxRelay(batch_size=10, install_signal_handlers=False).run(once=True)
    assert stats.published == 11
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
    assert received_message_ids(broker, 25) == [str(row.message_id) for row in rows]


def test_two_relays_side_by_side_send_a_backlog_exactly_once(broker, postgresql):
    # given
    backlog(2000)
    relays = [OutboxRelay(batch_size=100, install_signal_handlers=False) for _ in range(2)]
    # when: both drain at once
    threads = [threading.Thread(target=relay.run, kwargs={"once": True}) for relay in relays]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # then: every row published by exactly one of them
    assert [relay.stats.published > 0 for relay in relays] == [True, True]
    assert sum(relay.stats.published for relay in relays) == 2000
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
    assert queue_depth(broker) == 2000


def wait_until_published(row: OutboxMessage, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if OutboxMessage.objects.filter(pk=row.pk, published_at__isnull=False).exists():
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"outbox row {row.pk} not published within {timeout}s")


def test_an_idle_relay_is_woken_by_each_commit_after_a_partial_batch(broker, postgresql, listen_fallback):
    # given: a running relay, idle after publishing one row (a partial batch)
    relay = OutboxRelay(install_signal_handlers=False)
    runner = threading.Thread(target=relay.run)
    runner.start()
    try:
        with transaction.atomic():
            first = emit()
        first_seconds = wait_until_published(first)
        # when: two more commits, one at a time
        later_seconds = []
        for _ in range(2):
            time.sleep(0.3)  # idle again, waiting on LISTEN
            with transaction.atomic():
                row = emit()
            later_seconds.append(wait_until_published(row))
    finally:
        relay.stop()
        runner.join(timeout=10)
    # then: each was published at once, not after the (60 s) fallback poll
    assert not runner.is_alive()
    assert max([first_seconds, *later_seconds]) < 2.0
    assert relay.stats.published == 3
    assert queue_depth(broker) == 3


def outbox_rows_read_by_scans() -> int:
    """Outbox rows read by sequential scans in this transaction, so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_returned(%s::regclass)", [OutboxMessage._meta.db_table])
        return cursor.fetchone()[0]


def test_a_relay_started_on_an_empty_outbox_reads_no_waiting_timer_once_they_are_there(broker, postgresql):
    # given: a relay that has run on an empty, analyzed outbox, often enough for a prepared
    # statement to keep a plan made for it (psycopg prepares a statement run twice; PostgreSQL
    # keeps a generic plan after five runs)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxMessage._meta.db_table}")
    relay = OutboxRelay(install_signal_handlers=False)
    for _ in range(8):
        relay.run(once=True)
        relay.next_due_in()
    # the relay's connection prepares nothing: a prepared lease could keep the plan PostgreSQL
    # made for the empty outbox (the idle relay with 100,000 timers: 1.06% of a core prepared,
    # 0.04% planned afresh, docs/benchmarks.md)
    assert connection.connection.prepare_threshold is None
    # when: 2,000 timers due tomorrow wait
    tomorrow = timezone.now() + timedelta(days=1)
    OutboxMessage.objects.bulk_create([
        OutboxMessage(queue="payment_requests", type="payment.charge_due", correlation_id=str(i), producer="p",
                      payload={}, due_at=tomorrow, next_attempt_at=tomorrow) for i in range(2000)
    ])
    # and autovacuum has analyzed them (it does after this many new rows; before it has, any plan
    # of the lease guesses a third of the outbox due and may scan it all: the test would depend on
    # when autovacuum runs)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxMessage._meta.db_table}")
    with transaction.atomic():
        before = outbox_rows_read_by_scans()
        leased = outbox_lease(limit=5000)
        due_in = relay.next_due_in()
        read = outbox_rows_read_by_scans() - before
    relay._close_publisher()
    # then: the lease and the next-due lookup were planned for the outbox as it is now (through
    # the due index), not for the empty one (a scan of every row)
    assert (leased, read) == ([], 0)
    assert 23 * 3600 < due_in <= 24 * 3600

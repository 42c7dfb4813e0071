"""The history by day partitions (PostgreSQL): duplicates across days, what a prune keeps, the upgrade."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pika
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from messaging.envelope import decode
from messaging.history import (
    OUTBOX_TABLE,
    PROCESSED_TABLE,
    day_start,
    history_partitions_ensure,
    history_prune,
    partition_name,
)
from messaging.inbox import processed_records
from messaging.lease import outbox_lease
from messaging.models import DeadLetter, HistoryWindow, OutboxMessage, ProcessedMessage

pytestmark = [
    pytest.mark.skipif("postgresql" not in settings.DATABASES["default"]["ENGINE"],
                       reason="the history is partitioned on PostgreSQL only"),
    # a prune detaches partitions concurrently, which no transaction may hold
    pytest.mark.django_db(transaction=True),
]

CONSUMER = "warehouse.new_orders"
RETENTION = timedelta(days=7)


def today():
    return timezone.now().astimezone(UTC).date()


def delivery(message_id: str, written: datetime, *, redelivered: bool = False):
    """A message as the worker decodes it from RabbitMQ, with the relay's AMQP timestamp."""
    properties = pika.BasicProperties(message_id=message_id, type="order.placed", correlation_id="o-1",
                                      timestamp=int(written.timestamp()))
    return decode("new_orders", properties, b"{}", redelivered=redelivered)


def record(message) -> set[str]:
    with transaction.atomic():
        return processed_records(consumer=CONSUMER, message_ids=[message.message_id], created=[message.created_at])


def partition_of(model, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return cursor.fetchone()[0]


def outbox_row(*, written: datetime, published: datetime | None, due: datetime | None = None) -> OutboxMessage:
    row = OutboxMessage.objects.create(queue="new_orders", type="order.placed", correlation_id=str(uuid.uuid4()),
                                       payload={}, published_at=published, due_at=due)
    OutboxMessage.objects.filter(pk=row.pk).update(created_at=written, next_attempt_at=due or written)
    return OutboxMessage.objects.get(pk=row.pk)


def test_a_redelivery_after_midnight_of_a_message_written_before_is_still_a_duplicate():
    # given: a message written a second before midnight, handled then (its record in yesterday's partition)
    midnight = day_start(today())
    message = delivery("m-late", midnight - timedelta(seconds=1))
    first = record(message)
    # when: it comes again after midnight (an ack lost, the broker delivers it again)
    again = record(delivery("m-late", midnight - timedelta(seconds=1), redelivered=True))
    # then: the same key, the same partition: a duplicate
    assert (first, again) == ({"m-late"}, set())
    stored = ProcessedMessage.objects.get(message_id="m-late")
    assert stored.message_created_at == midnight - timedelta(seconds=1)
    assert partition_of(ProcessedMessage, stored.pk) == partition_name(PROCESSED_TABLE, today() - timedelta(days=1))


def test_a_message_older_than_every_partition_is_recorded_at_the_window_start_and_still_deduplicated():
    # given: a timer written 30 days ago (its day's records long dropped) fires now
    window = HistoryWindow.objects.get()
    written = timezone.now() - timedelta(days=30)
    # when: delivered, then delivered again
    first = record(delivery("m-old", written))
    again = record(delivery("m-old", written, redelivered=True))
    # then
    assert (first, again) == ({"m-old"}, set())
    assert ProcessedMessage.objects.get(message_id="m-old").message_created_at == window.oldest


def test_a_pending_timer_due_after_the_retention_survives_the_prune():
    # given: ten days ago a timer was set for tomorrow; nine days ago a message went out
    ten, nine = today() - timedelta(days=10), today() - timedelta(days=9)
    history_partitions_ensure(first=ten, last=nine)
    timer = outbox_row(written=day_start(ten) + timedelta(hours=12), published=None,
                       due=timezone.now() + timedelta(days=1))
    sent = outbox_row(written=day_start(nine) + timedelta(hours=12), published=day_start(nine) + timedelta(hours=12))
    # when
    result = history_prune(older_than=RETENTION)
    # then: the timer's partition stays (and says why); the other day is gone, not deleted row by row
    assert OutboxMessage.objects.get(pk=timer.pk).published_at is None
    assert result.kept == {
        partition_name(OUTBOX_TABLE, ten): "1 unpublished row(s) (timers due later, or not sent yet)"}
    assert partition_name(OUTBOX_TABLE, nine) in result.dropped
    assert not table_exists(partition_name(OUTBOX_TABLE, nine))
    assert not OutboxMessage.objects.filter(pk=sent.pk).exists()
    assert (result.outbox_deleted, result.processed_deleted) == (0, 0)
    # and: when it is due the relay still finds it
    OutboxMessage.objects.filter(pk=timer.pk).update(next_attempt_at=timezone.now())
    with transaction.atomic():
        assert [row.id for row in outbox_lease(limit=10)] == [timer.pk]


def test_a_partition_with_an_unpublished_row_or_an_unresolved_dead_letter_is_not_dropped():
    # given: eight days ago a row the relay never sent; nine days ago a message parked by its consumer
    eight, nine = today() - timedelta(days=8), today() - timedelta(days=9)
    history_partitions_ensure(first=nine, last=eight)
    stuck = outbox_row(written=day_start(eight) + timedelta(hours=1), published=None)
    parked = outbox_row(written=day_start(nine) + timedelta(hours=1), published=day_start(nine) + timedelta(hours=1))
    letter = DeadLetter.objects.create(queue="new_orders", message_id=str(parked.message_id), type=parked.type,
                                       reason=DeadLetter.Reason.FAILED, error="boom")
    # when
    result = history_prune(older_than=RETENTION)
    # then: both stay
    assert set(OutboxMessage.objects.filter(pk__in=[stuck.pk, parked.pk]).values_list("pk", flat=True)) == {
        stuck.pk, parked.pk}
    assert result.kept == {
        partition_name(OUTBOX_TABLE, eight): "1 unpublished row(s) (timers due later, or not sent yet)",
        partition_name(OUTBOX_TABLE, nine): "1 message(s) parked as dead letters, not re-driven yet"}
    # when: the letter is re-driven, the next prune lets its day go
    DeadLetter.objects.filter(pk=letter.pk).update(redriven_at=timezone.now())
    result = history_prune(older_than=RETENTION)
    assert partition_name(OUTBOX_TABLE, nine) in result.dropped
    assert not OutboxMessage.objects.filter(pk=parked.pk).exists()
    assert OutboxMessage.objects.filter(pk=stuck.pk).exists()


def test_the_prune_moves_the_window_past_the_records_it_drops():
    # given: records of ten days ago and of today
    ten = today() - timedelta(days=10)
    history_partitions_ensure(first=ten, last=today())
    old = ProcessedMessage.objects.create(consumer=CONSUMER, message_id="m-10", message_created_at=day_start(ten))
    fresh = ProcessedMessage.objects.create(consumer=CONSUMER, message_id="m-0")
    # when
    result = history_prune(older_than=RETENTION)
    # then: the old day's partition is dropped; the window starts at the oldest day kept
    assert partition_name(PROCESSED_TABLE, ten) in result.dropped
    assert list(ProcessedMessage.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not ProcessedMessage.objects.filter(pk=old.pk).exists()
    assert HistoryWindow.objects.get().oldest == day_start(today() - timedelta(days=7))


def test_the_migration_partitions_the_tables_in_place_keeping_every_row_pending_ones_included():
    # given: the tables as they were before (migration 0011), with rows in them
    executor = MigrationExecutor(connection)
    executor.migrate([("messaging", "0011_outbox_traceparent")])
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [OUTBOX_TABLE])
        assert cursor.fetchone()[0] == "r"
        rows = [  # message id, written, published, due
            ("11111111-1111-1111-1111-111111111111", now - timedelta(days=3), now - timedelta(days=3), None),
            ("22222222-2222-2222-2222-222222222222", now - timedelta(days=20), None, now + timedelta(days=2)),
            ("33333333-3333-3333-3333-333333333333", now - timedelta(seconds=5), None, None),
        ]
        for message_id, written, published, due in rows:
            cursor.execute(
                f"INSERT INTO {OUTBOX_TABLE} (message_id, exchange, queue, type, correlation_id, causation_id, "
                "producer, payload, created_at, published_at, attempts, last_error, next_attempt_at, due_at, "
                "traceparent) VALUES (%s, 'logistics', 'new_orders', 'order.placed', 'o', '', 'shop', '{}', %s, %s, "
                "0, '', %s, %s, '')", [message_id, written, published, due or written, due])
        cursor.execute(f"INSERT INTO {PROCESSED_TABLE} (consumer, message_id, processed_at) VALUES (%s, %s, %s)",
                       [CONSUMER, rows[0][0], now - timedelta(days=3)])
        cursor.execute(f"SELECT max(id) FROM {OUTBOX_TABLE}")
        last_id = cursor.fetchone()[0]
    # when
    executor = MigrationExecutor(connection)
    executor.migrate([("messaging", "0012_history_partitions")])
    # then: partitioned, every row in its day's partition, the pending ones still pending
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s) ORDER BY relname",
                       [[OUTBOX_TABLE, PROCESSED_TABLE]])
        assert cursor.fetchall() == [(OUTBOX_TABLE, "p"), (PROCESSED_TABLE, "p")]
    stored = {str(row.message_id): row for row in OutboxMessage.objects.all()}
    assert sorted(stored) == [row[0] for row in rows]
    for message_id, written, published, due in rows:
        assert (stored[message_id].created_at, stored[message_id].published_at, stored[message_id].due_at) == (
            written, published, due)
        assert partition_of(OutboxMessage, stored[message_id].pk) == partition_name(
            OUTBOX_TABLE, written.astimezone(UTC).date())
    # the processed record keyed by its message's creation: a redelivery of it is a duplicate
    assert record(delivery(rows[0][0], rows[0][1])) == set()
    # the relay leases the row that is due (the timer waits), the ids go on
    with transaction.atomic():
        assert [str(row.message_id) for row in outbox_lease(limit=10)] == [rows[2][0]]
    assert outbox_row(written=now, published=None).pk == last_id + 1


def test_the_migration_works_on_empty_tables_and_back():
    # given: empty tables as before
    executor = MigrationExecutor(connection)
    executor.migrate([("messaging", "0011_outbox_traceparent")])
    # when
    executor = MigrationExecutor(connection)
    executor.migrate([("messaging", "0012_history_partitions")])
    # then: today's partitions and the days ahead are there; a message goes in
    assert table_exists(partition_name(OUTBOX_TABLE, today() + timedelta(days=7)))
    assert table_exists(partition_name(PROCESSED_TABLE, today() + timedelta(days=7)))
    assert outbox_row(written=timezone.now(), published=None).pk >= 1
    assert record(delivery("m-new", timezone.now())) == {"m-new"}


def test_metrics_say_how_many_days_of_partitions_are_made_ahead():
    # given: the partitions housekeeping made (7 days ahead of today)
    from observability import metrics

    history_partitions_ensure()
    # when
    text = metrics.metrics_render()[0].decode()
    # then: the end of the newest partition, in days from now
    (line,) = [line for line in text.splitlines() if line.startswith("logistics_history_days_ahead ")]
    expected = (day_start(today() + timedelta(days=8)) - timezone.now()) / timedelta(days=1)
    assert abs(float(line.split()[1]) - expected) < 0.01

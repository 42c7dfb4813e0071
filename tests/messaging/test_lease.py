"""The relay's statements (messaging.lease): lease what is due in due order, mark, put off; on both engines."""

import json
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from messaging.lease import outbox_lease, outbox_mark_published, outbox_next_due, outbox_put_off
from messaging.models import OutboxMessage

DATABASES = [alias for alias in ("default", "sqlite") if alias in settings.DATABASES]

pytestmark = pytest.mark.django_db(databases=DATABASES)


def row(using: str, *, next_attempt_at=None, published_at=None, **fields) -> OutboxMessage:
    values = {"queue": "new_orders", "type": "order.placed", "correlation_id": "o-1", "producer": "shop",
              "payload": {"order_id": "o-1", "note": "päev ✓"}, "published_at": published_at}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    return OutboxMessage.objects.using(using).create(**{**values, **fields})


def leased_ids(using: str, limit: int = 100) -> list[int]:
    with transaction.atomic(using=using):
        return [leased.id for leased in outbox_lease(limit=limit, using=using)]


@pytest.mark.parametrize("using", DATABASES)
def test_a_lease_takes_the_due_unpublished_rows_in_due_order(using):
    # given: rows due a while ago, now, tomorrow; one published
    now = timezone.now()
    late = row(using, next_attempt_at=now - timedelta(minutes=5))
    first, second = row(using), row(using)
    row(using, next_attempt_at=now + timedelta(days=1))
    row(using, published_at=now)
    # when
    leased = leased_ids(using)
    first_two = leased_ids(using, limit=2)
    # then
    assert leased == [late.id, first.id, second.id]
    assert first_two == [late.id, first.id]


@pytest.mark.parametrize("using", DATABASES)
def test_a_leased_row_carries_what_the_relay_sends(using):
    # given
    written = row(using, causation_id="cause-1")
    written.refresh_from_db()
    # when
    with transaction.atomic(using=using):
        (leased,) = outbox_lease(limit=10, using=using)
    # then: the payload as JSON text, the creation time in whole seconds
    assert (leased.id, leased.message_id, leased.exchange, leased.routing_key, leased.type, leased.correlation_id,
            leased.causation_id, leased.producer, leased.created) == (
        written.id, str(written.message_id), "logistics", "new_orders", "order.placed", "o-1", "cause-1", "shop",
        int(written.created_at.timestamp()))
    assert json.loads(leased.body) == {"order_id": "o-1", "note": "päev ✓"}


@pytest.mark.parametrize("using", DATABASES)
def test_marked_rows_are_published_and_leased_no_more(using):
    # given
    rows = [row(using) for _ in range(3)]
    when = timezone.now()
    # when
    with transaction.atomic(using=using):
        marked = outbox_mark_published([rows[0].id, rows[2].id], when=when, using=using)
    # then
    assert marked == 2
    published = OutboxMessage.objects.using(using).filter(published_at=when).values_list("id", flat=True)
    assert sorted(published) == [rows[0].id, rows[2].id]
    assert leased_ids(using) == [rows[1].id]


@pytest.mark.parametrize("using", DATABASES)
def test_a_row_put_off_is_not_due_before_its_time_and_keeps_its_error(using):
    # given
    refused, other = row(using), row(using)
    until = timezone.now() + timedelta(seconds=30)
    # when
    outbox_put_off(refused.id, error="unroutable", until=until, using=using)
    # then
    refused.refresh_from_db(using=using)
    assert (refused.attempts, refused.last_error, refused.next_attempt_at) == (1, "unroutable", until)
    assert leased_ids(using) == [other.id]
    assert outbox_next_due(using=using) == other.next_attempt_at


@pytest.mark.parametrize("using", DATABASES)
def test_the_next_due_time_is_the_first_unpublished_rows(using):
    # given: nothing waits
    assert outbox_next_due(using=using) is None
    tomorrow = timezone.now() + timedelta(days=1)
    row(using, published_at=timezone.now())
    row(using, next_attempt_at=tomorrow + timedelta(hours=1))
    row(using, next_attempt_at=tomorrow)
    # when / then
    assert outbox_next_due(using=using) == tomorrow


@pytest.mark.parametrize("using", DATABASES)
def test_a_row_written_without_a_due_time_is_due_at_once(using):
    # given: written by plain SQL, as a tool might (the database fills next_attempt_at in)
    table, db = OutboxMessage._meta.db_table, connections[using]
    with db.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (message_id, exchange, queue, type, correlation_id, causation_id, "
                       "producer, payload, created_at, attempts, last_error) VALUES "
                       "(%s, 'logistics', 'new_orders', 't', 'c', '', '', '{}', %s, 0, '')",
                       [uuid.uuid4().hex, db.ops.adapt_datetimefield_value(timezone.now() - timedelta(seconds=1))])
    # when / then
    assert len(leased_ids(using)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_row_leased_by_one_relay_is_skipped_by_another():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    # given: five rows; one relay holds a lease on the first two
    rows = [row("default") for _ in range(5)]
    leased, released = threading.Event(), threading.Event()
    first: list[int] = []

    def first_relay():
        try:
            with transaction.atomic():
                first.extend(r.id for r in outbox_lease(limit=2))
                leased.set()
                released.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=first_relay)
    thread.start()
    assert leased.wait(10)
    # when: a second relay leases meanwhile
    try:
        second = leased_ids("default")
    finally:
        released.set()
        thread.join(10)
    # then
    assert first == [rows[0].id, rows[1].id]
    assert second == [r.id for r in rows[2:]]

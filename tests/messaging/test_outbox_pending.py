"""The relay's work list (OutboxPending): kept in step with the outbox by the database itself,
a publish mark that touches no index (HOT), and a lease that reads the outbox only by its key."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from messaging.models import OutboxMessage, OutboxPending
from messaging.outbox import outbox_emit
from messaging.relay import OutboxRelay, _mark_published

pytestmark = pytest.mark.django_db

OUTBOX = OutboxMessage._meta.db_table


def emit() -> OutboxMessage:
    order_id = str(uuid.uuid4())
    with transaction.atomic():
        return outbox_emit(queue="new_orders", type="order.placed", correlation_id=order_id, producer="shop",
                           payload={"order_id": order_id})


def listed() -> set[int]:
    return set(OutboxPending.objects.values_list("outbox_id", flat=True))


def test_an_unpublished_row_is_listed_however_it_is_written():
    # when: outbox_emit, the ORM one row and several at once, plain SQL; and one row written published
    emitted = emit()
    created = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={})
    bulk = OutboxMessage.objects.bulk_create([OutboxMessage(queue="new_orders", type="t", correlation_id="c",
                                                            payload={}) for _ in range(3)])
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {OUTBOX} (message_id, exchange, queue, type, correlation_id, causation_id, "
                       "producer, payload, created_at, attempts, last_error) VALUES "
                       "(%s, 'logistics', 'new_orders', 't', 'c', '', '', '{}', now(), 0, '') RETURNING id",
                       [uuid.uuid4()])
        by_sql = cursor.fetchone()[0]
    OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={},
                                 published_at=timezone.now())
    # then: every unpublished row is on the relay's list, the published one is not
    assert listed() == {emitted.pk, created.pk, *(row.pk for row in bulk), by_sql}


def test_the_list_follows_published_at_next_attempt_at_and_deletes_whoever_writes_them():
    # given
    rows = [emit() for _ in range(4)]
    later = timezone.now() + timedelta(minutes=5)
    # when: one marked published, one put off, one deleted unpublished
    OutboxMessage.objects.filter(pk=rows[0].pk).update(published_at=timezone.now())
    OutboxMessage.objects.filter(pk=rows[1].pk).update(next_attempt_at=later, attempts=1)
    OutboxMessage.objects.filter(pk=rows[2].pk).delete()
    # then
    assert listed() == {rows[1].pk, rows[3].pk}
    assert OutboxPending.objects.get(outbox_id=rows[1].pk).next_attempt_at == later
    # and a row whose mark is cleared (to send it again) is listed again
    OutboxMessage.objects.filter(pk=rows[0].pk).update(published_at=None)
    assert listed() == {rows[0].pk, rows[1].pk, rows[3].pk}


def test_deleting_published_rows_leaves_the_list_alone():
    # given
    published, waiting = emit(), emit()
    OutboxMessage.objects.filter(pk=published.pk).update(published_at=timezone.now())
    # when: the retention deletes published rows
    OutboxMessage.objects.filter(published_at__isnull=False).delete()
    # then
    assert listed() == {waiting.pk}


def test_the_admin_lists_the_rows_waiting_and_the_rows_published():
    # given
    from django.contrib.auth import get_user_model
    from django.test import Client

    waiting, published = emit(), emit()
    OutboxMessage.objects.filter(pk=published.pk).update(published_at=timezone.now())
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("ops", password="x", is_staff=True, is_superuser=True))
    # when
    shown = {}
    for state in ("waiting", "published"):
        response = staff.get("/admin/messaging/outboxmessage/", {"relay": state})
        assert response.status_code == 200
        shown[state] = [row.pk for row in response.context["cl"].result_list]
    # then
    assert shown == {"waiting": [waiting.pk], "published": [published.pk]}


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("HOT updates and query plans are PostgreSQL's")


def updates_so_far() -> tuple[int, int]:
    """(rows updated, of which HOT) in the outbox by this connection, not yet reported to the statistics."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_get_xact_tuples_updated(%s::regclass), "
                       "pg_stat_get_xact_tuples_hot_updated(%s::regclass)", [OUTBOX, OUTBOX])
        return cursor.fetchone()


def test_the_publish_mark_is_a_hot_update_that_adds_to_no_index(postgresql):
    # given: forty unpublished rows
    ids = [emit().pk for _ in range(40)]
    before = updates_so_far()
    # when: the relay's mark
    _mark_published(ids, timezone.now())
    after = updates_so_far()
    # then: every row updated in place on its page (no new entry in the outbox's indexes), and off the list
    assert (after[0] - before[0], after[1] - before[1]) == (40, 40)
    assert OutboxMessage.objects.filter(pk__in=ids, published_at__isnull=False).count() == 40
    assert listed() == set()


def test_truncating_the_outbox_empties_the_list(postgresql):
    # given
    emit()
    # when
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {OUTBOX}")
    # then: no entry is left to be leased for a row that is gone
    assert listed() == set()


def lease_plan() -> str:
    """The plan of the relay's lease, made as the relay has it made: afresh, for the tables as they are."""
    with transaction.atomic():
        sql, params = OutboxRelay(install_signal_handlers=False)._pending_query()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            return "\n".join(row[0] for row in cursor.fetchall())


def test_the_lease_reads_a_large_outbox_only_by_its_key_whatever_the_list_statistics_say(postgresql):
    # given: 5,000 published rows and 20 waiting, and statistics that say so
    OutboxMessage.objects.bulk_create([OutboxMessage(queue="new_orders", type="t", correlation_id="c", payload={},
                                                     published_at=timezone.now()) for _ in range(5000)])
    OutboxMessage.objects.bulk_create([OutboxMessage(queue="new_orders", type="t", correlation_id="c", payload={})
                                       for _ in range(20)])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OUTBOX}, {OutboxPending._meta.db_table}")
    small_list = lease_plan()
    # and: statistics that still count 3,000 waiting rows the relay has since published (the
    # list fills and empties all the time; its statistics lag behind)
    waiting = OutboxMessage.objects.bulk_create([OutboxMessage(queue="new_orders", type="t", correlation_id="c",
                                                               payload={}) for _ in range(3000)])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxPending._meta.db_table}")
    OutboxMessage.objects.filter(pk__in=[row.pk for row in waiting]).update(published_at=timezone.now())
    stale_list = lease_plan()
    # then: either way the outbox is read through its primary key, never scanned whole
    for plan in (small_list, stale_list):
        assert f"Index Scan using {OUTBOX}_pkey on {OUTBOX}" in plan, plan
        assert f"Seq Scan on {OUTBOX}" not in plan, plan

"""The relay's statements on the outbox: lease the rows that are due, mark the published ones.

Unpublished rows are listed by the partial index ``outbox_due_idx`` in (next_attempt_at, id)
order, so a lease reads a range of that index: rows not due yet (timers set for tomorrow) are
never read. On PostgreSQL a lease locks its rows (``FOR UPDATE SKIP LOCKED``) until the
transaction that the caller holds ends, so relays side by side never send a row twice, and a
relay that dies mid-batch leaves its rows to the next one. SQLite has no row locks (one relay).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, Field
from django.utils import timezone

from messaging.models import OutboxMessage


@dataclass(frozen=True)
class PendingRow:
    """What the relay sends of an outbox row."""

    id: int
    message_id: str
    exchange: str
    routing_key: str
    type: str
    correlation_id: str
    causation_id: str
    producer: str
    created: int  # seconds since the epoch (AMQP's timestamp)
    body: bytes  # the payload as the database's JSON text: sent as it is, never parsed and encoded again
    traceparent: str = ""  # the W3C trace context it was written in
    written_at: datetime | None = None


def outbox_lease(*, limit: int, using: str = DEFAULT_DB_ALIAS) -> list[PendingRow]:
    """The first ``limit`` unpublished rows that are due, in the order they are due.

    On PostgreSQL the caller holds a transaction on ``using``: the rows stay locked until it
    ends, and rows locked by another relay are skipped.
    """
    connection = connections[using]
    sql, params = outbox_lease_sql(limit=limit, now=timezone.now(), using=using)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    leased = []
    for r in rows:
        written_at = _moment(r[8])
        leased.append(PendingRow(
            id=r[0], message_id=str(r[1] if isinstance(r[1], UUID) else UUID(r[1])), exchange=r[2],
            routing_key=r[3], type=r[4], correlation_id=r[5], causation_id=r[6], producer=r[7],
            created=int(written_at.timestamp()), body=r[9].encode(), traceparent=r[10], written_at=written_at))
    return leased


def outbox_lease_sql(*, limit: int, now: datetime, using: str = DEFAULT_DB_ALIAS) -> tuple[str, list]:
    """The lease's statement: a range of the due index, locked (PostgreSQL), as plain columns.

    Written out: the relay runs it on every wake-up, a few rows at a time, and the ORM built
    it anew each time (half the relay's CPU in the pipeline benchmark, docs/benchmarks.md).
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = OutboxMessage._meta
    columns = ", ".join(f"CAST({quote(cast(Field, meta.get_field(name)).column)} AS TEXT)" if name == "payload"
                        else quote(cast(Field, meta.get_field(name)).column) for name in _LEASED)
    due, pk = quote(meta.get_field("next_attempt_at").column), quote(meta.pk.column)
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (f"SELECT {columns} FROM {quote(meta.db_table)} "  # noqa: S608 - names are the models' own, quoted; values go as parameters
           f"WHERE {quote(meta.get_field('published_at').column)} IS NULL AND {due} <= %s "
           f"ORDER BY {due}, {pk} LIMIT %s{lock}")
    return sql, [meta.get_field("next_attempt_at").get_db_prep_value(now, connection), limit]


# What a lease reads of each row, in the order PendingRow takes it.
_LEASED = ("id", "message_id", "exchange", "queue", "type", "correlation_id", "causation_id", "producer",
           "created_at", "payload", "traceparent")


def _moment(value: datetime | str) -> datetime:
    """A timestamp as the database hands it back: aware on PostgreSQL, ISO text in UTC on SQLite."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def outbox_mark_published(ids: Sequence[int], *, when: datetime, written: Sequence[datetime] = (),
                          using: str = DEFAULT_DB_ALIAS) -> int:
    """Mark these rows published (the broker confirmed them). Returns how many were marked.

    ``written``: the rows' ``created_at`` as leased. On PostgreSQL their range bounds the
    partitions the mark reads (the outbox is partitioned by it, ``messaging.history``): a
    batch written today is looked up in today's partition, not in every day retained.
    On PostgreSQL the caller holds the transaction of their lease.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":  # no arrays: IN lists, in chunks under SQLite's parameter limit
        return sum(OutboxMessage.objects.using(using).filter(id__in=ids[start:start + 500]).update(published_at=when)
                   for start in range(0, len(ids), 500))
    # The ids as one array parameter. The ORM's ``filter(id__in=ids)`` sends one parameter per
    # id: for a batch of 5,000 that mark took a quarter of a second (the server parsing and
    # planning 5,000 parameters), as long as leasing and reading the batch.
    quote = connection.ops.quote_name
    published_at = OutboxMessage._meta.get_field("published_at")
    created_at = OutboxMessage._meta.get_field("created_at")
    sql = (f"UPDATE {quote(OutboxMessage._meta.db_table)} SET {quote(published_at.column)} = %s "  # noqa: S608 - names are the models' own, quoted; values go as parameters
           f"WHERE {quote(OutboxMessage._meta.pk.column)} = ANY(%s)")
    params = [published_at.get_db_prep_save(when, connection), list(ids)]
    if written:
        sql += f" AND {quote(created_at.column)} BETWEEN %s AND %s"
        params += [created_at.get_db_prep_value(min(written), connection),
                   created_at.get_db_prep_value(max(written), connection)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def outbox_put_off(row_id: int, *, error: str, until: datetime, using: str = DEFAULT_DB_ALIAS) -> None:
    """A row the broker refused: not due again before ``until``; the attempt and the error are kept."""
    OutboxMessage.objects.using(using).filter(id=row_id).update(
        attempts=F("attempts") + 1, last_error=error, next_attempt_at=until,
    )


def outbox_next_due(*, using: str = DEFAULT_DB_ALIAS) -> datetime | None:
    """When the first unpublished row is due (the first entry of the due index); None when none waits.

    Written out, as the lease is: the relay asks after every wake-up."""
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = OutboxMessage._meta
    due = quote(meta.get_field("next_attempt_at").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {due} FROM {quote(meta.db_table)} "  # noqa: S608 - names are the models' own, quoted; values go as parameters
                       f"WHERE {quote(meta.get_field('published_at').column)} IS NULL "
                       f"ORDER BY {due}, {quote(meta.pk.column)} LIMIT 1")
        first = cursor.fetchone()
    return None if first is None else _moment(first[0])

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
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import F, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from messaging.models import OutboxMessage, OutboxPending


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


def outbox_lease(*, limit: int, using: str = DEFAULT_DB_ALIAS) -> list[PendingRow]:
    """The first ``limit`` unpublished rows that are due, in the order they are due.

    On PostgreSQL the caller holds a transaction on ``using``: the rows stay locked until it
    ends, and rows locked by another relay are skipped.
    """
    ids = [r[0] for r in _planned_per_call(pending_due(limit=limit, using=using), using)]
    if not ids:
        return []
    rows = {r[0]: r for r in _planned_per_call(outbox_due(limit=limit, using=using).filter(id__in=ids), using)}
    return [
        PendingRow(id=r[0], message_id=str(r[1]), exchange=r[2], routing_key=r[3], type=r[4], correlation_id=r[5],
                   causation_id=r[6], producer=r[7], created=int(r[8].timestamp()), body=r[9].encode())
        for r in (rows[i] for i in ids if i in rows)
    ]


def pending_due(*, limit: int, using: str = DEFAULT_DB_ALIAS) -> QuerySet:
    """The ids of the first ``limit`` due rows of the relay's work list, locked (PostgreSQL),
    skipping rows another relay holds: a range of its (next_attempt_at, outbox_id) index."""
    # The producers' clock (it set the due times), to the microsecond on SQLite too.
    return (OutboxPending.objects.using(using).filter(next_attempt_at__lte=timezone.now())
            .order_by("next_attempt_at", "outbox_id").select_for_update(skip_locked=True)
            .values_list("outbox_id", flat=True)[:limit])


def outbox_due(*, limit: int, using: str = DEFAULT_DB_ALIAS) -> QuerySet:
    """The lease's query: a range of the due index, locked (PostgreSQL), as plain values."""
    return (
        OutboxMessage.objects.using(using)
        .annotate(payload_text=Cast("payload", output_field=TextField()))
        .values_list("id", "message_id", "exchange", "queue", "type", "correlation_id", "causation_id", "producer",
                     "created_at", "payload_text")
    )


def outbox_mark_published(ids: Sequence[int], *, when: datetime, using: str = DEFAULT_DB_ALIAS) -> int:
    """Mark these rows published (the broker confirmed them). Returns how many were marked.

    On PostgreSQL the caller holds the transaction of their lease.
    """
    return OutboxMessage.objects.using(using).filter(id__in=ids).update(published_at=when)


def outbox_put_off(row_id: int, *, error: str, until: datetime, using: str = DEFAULT_DB_ALIAS) -> None:
    """A row the broker refused: not due again before ``until``; the attempt and the error are kept."""
    OutboxMessage.objects.using(using).filter(id=row_id).update(
        attempts=F("attempts") + 1, last_error=error, next_attempt_at=until,
    )


def outbox_next_due(*, using: str = DEFAULT_DB_ALIAS) -> datetime | None:
    """When the first unpublished row is due (the first entry of the due index); None when none waits."""
    first = _planned_per_call(OutboxPending.objects.using(using).order_by("next_attempt_at", "outbox_id")
                              .values_list("next_attempt_at")[:1], using)
    return first[0][0] if first else None


def _planned_per_call(queryset: QuerySet, using: str) -> list[tuple]:
    """The rows of ``queryset``, planned for this call on PostgreSQL, never as a prepared statement.

    The relay's work list fills and empties all the time: a generic plan kept from a moment it
    was empty reads and sorts all of it (with 100,000 timers waiting, 8-11 ms per next-due
    lookup; the idle relay's database CPU 0.05% -> 0.7%). Elsewhere: the queryset as it is.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        return [tuple(r) if isinstance(r, tuple | list) else (r,) for r in queryset]
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.cursor.execute(sql, params, prepare=False)
        return [tuple(r) for r in cursor.fetchall()]

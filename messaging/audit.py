"""The audit: is every published message accounted for by every queue it reached?

For each outbox row published long enough ago (a grace period lets the workers catch up),
and for each work queue its routing reaches (the one queue of a point-to-point message; every
subscribed queue of an event, from ``messaging.topology``), that queue's consumer has either a
processed record of the message (``ProcessedMessage``) or parked it (``DeadLetter``). A
delivery with neither is a gap: the message was lost on its way (a queue purged, a broker
disk lost) or is still waiting in a queue whose workers are down.

``deliveries_resend()`` sends the messages of the gaps again, each to the one queue that
missed it, with its own message id: a consumer that did handle it after all finds its
processed record and changes nothing.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pika
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q
from django.utils import timezone

from messaging import broker, topology
from messaging.lease import PendingRow
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.registry import route_for
from messaging.relay import message_properties

# Outbox rows read and checked at a time.
CHUNK = 2000


@dataclass(frozen=True)
class Gap:
    """One delivery nobody accounts for: ``queue`` never handled nor parked the message."""

    outbox_id: int
    message_id: str
    type: str
    order_id: str
    queue: str
    published_at: datetime

    def age_seconds(self, now: datetime) -> float:
        return (now - self.published_at).total_seconds()


@dataclass
class AuditFindings:
    messages: int = 0  # outbox messages checked
    deliveries: int = 0  # (message, queue) pairs checked
    gaps: list[Gap] = field(default_factory=list)
    # Every message published up to here is checked now, or was by an earlier run: where the
    # next run starts (what is published after it, and the gaps still open).
    watermark: datetime | None = None


def queues_reached(*, exchange: str, routing_key: str, type: str) -> tuple[str, ...]:
    """The work queues a message reaches, as the topology routes it now."""
    if exchange == topology.EVENTS_EXCHANGE:
        return tuple(topology.EVENT_SUBSCRIPTIONS.get(type, ()))
    return (routing_key,) if routing_key in topology.work_queues() else ()


def _consumer_of(queue: str) -> str | None:
    try:
        return route_for(queue).consumer
    except LookupError:
        return None  # a queue without handlers in this deployment: nothing to check it against


# What the audit reads of an outbox row, in this order.
_COLUMNS = ("id", "message_id", "exchange", "queue", "type", "correlation_id", "published_at", "created_at")


def deliveries_unaccounted(*, grace: timedelta, now: datetime | None = None, since: datetime | None = None,
                           reopen: Iterable[tuple[int, str]] = ()) -> AuditFindings:
    """The gaps among the messages published before ``now - grace``, oldest first.

    ``since`` (an earlier run's watermark): only what was published after it, plus the
    deliveries ``reopen`` names (``(outbox id, queue)``: the gaps that run left open). Its cost
    follows what is new, not the retained history: a range of the index on ``published_at``.
    Without ``since``: every published message retained (a full check).
    """
    now = now or timezone.now()
    cutoff = now - grace
    findings = AuditFindings(watermark=max(since, _safe_watermark(cutoff)) if since else _safe_watermark(cutoff))
    reopened: dict[int, set[str]] = defaultdict(set)
    for outbox_id, queue in reopen:
        reopened[int(outbox_id)].add(queue)
    if reopened:
        rows = list(OutboxMessage.objects.filter(id__in=list(reopened), published_at__isnull=False)
                    .order_by("id").values_list(*_COLUMNS))
        _check(findings, rows, only=reopened)
    after = (since, 0) if since else None
    while True:
        rows = outbox_published_after(after, until=cutoff, limit=CHUNK)
        if not rows:
            break
        after = (rows[-1][6], rows[-1][0])
        _check(findings, [row for row in rows if row[0] not in reopened])
    findings.gaps.sort(key=lambda gap: (gap.outbox_id, gap.queue))
    return findings


def _check(findings: AuditFindings, rows: list[tuple], *, only: dict[int, set[str]] | None = None) -> None:
    """Check these outbox rows' deliveries (``only``: just these queues of each row)."""
    findings.messages += len(rows)
    expected: dict[str, dict[str, tuple]] = defaultdict(dict)  # queue -> message id -> row
    for row in rows:
        for queue in queues_reached(exchange=row[2], routing_key=row[3], type=row[4]):
            if only is None or queue in only.get(row[0], ()):
                expected[queue][str(row[1])] = row
    if not expected:
        return
    # A message's processed records are keyed by its creation (whole seconds), or later (the
    # window's start, messaging.history): the oldest such key bounds the partitions read.
    lowest = min(row[7] for row in rows).replace(microsecond=0)
    for queue, by_id in expected.items():
        consumer = _consumer_of(queue)
        if consumer is None:
            continue
        findings.deliveries += len(by_id)
        missing = set(by_id) - set(ProcessedMessage.objects.filter(
            consumer=consumer, message_id__in=list(by_id), message_created_at__gte=lowest,
        ).values_list("message_id", flat=True))
        if missing:  # parked by this queue's consumer (a dead letter of another queue is no excuse)
            missing -= set(DeadLetter.objects.filter(queue=queue, message_id__in=list(missing))
                           .values_list("message_id", flat=True))
        findings.gaps.extend(
            Gap(outbox_id=by_id[m][0], message_id=m, type=by_id[m][4], order_id=by_id[m][5], queue=queue,
                published_at=by_id[m][6])
            for m in missing
        )


def outbox_published_after(after: tuple[datetime, int] | None, *, until: datetime, limit: int) -> list[tuple]:
    """The next ``limit`` rows published after ``after`` (published_at, id) and no later than
    ``until``, in that order: a range of the index ``outbox_published_idx`` (a relay marks a
    whole batch with one time, hence the id)."""
    rows = OutboxMessage.objects.filter(published_at__isnull=False, published_at__lte=until)
    if after is not None:
        rows = rows.filter(Q(published_at__gt=after[0]) | Q(published_at=after[0], id__gt=after[1]),
                           published_at__gte=after[0])  # the range's start, for the index
    return list(rows.order_by("published_at", "id").values_list(*_COLUMNS)[:limit])


def _safe_watermark(cutoff: datetime) -> datetime:
    """``cutoff``, or earlier while a transaction that may still mark rows published is open.

    The relay sets ``published_at`` to a time taken inside its lease's transaction, and that
    row is visible only once the transaction commits: a watermark past the start of an open
    transaction could leave its rows behind for good. A transaction open for longer than
    ``_SLOWEST_BATCH`` is no relay batch (someone's idle session) and holds nothing back."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return cutoff - _CLOCKS  # one writer at a time; a relay's mark follows its time at once
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid() AND xact_start > now() - %s", [_SLOWEST_BATCH])  # type: ignore[list-item]  # psycopg sends an interval
        oldest = cursor.fetchone()[0]
    return cutoff if oldest is None else min(cutoff, oldest - _CLOCKS)


# A relay's batch (lease, publish, mark) lasts seconds; the processes' clocks agree within this.
_SLOWEST_BATCH = timedelta(minutes=10)
_CLOCKS = timedelta(seconds=1)


def deliveries_resend(gaps: Iterable[Gap]) -> int:
    """Send each gap's message again to its one queue (the direct exchange, routing key = the
    queue), with publisher confirms. Returns how many the broker confirmed; raises when it
    refuses one (nothing is marked anywhere: running the audit again finds what is still missing).
    """
    gaps = list(gaps)
    rows = {row.id: row for row in OutboxMessage.objects.filter(id__in={gap.outbox_id for gap in gaps})}
    connection = broker.connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        sent = 0
        for gap in gaps:
            row = rows.get(gap.outbox_id)
            if row is None:  # pruned meanwhile
                continue
            channel.basic_publish(exchange=topology.exchange(), routing_key=gap.queue,
                                  body=json.dumps(row.payload).encode(), properties=_properties(row),
                                  mandatory=True)
            sent += 1
        return sent
    except pika.exceptions.UnroutableError as exc:
        raise RuntimeError(f"the broker could not route a resent message: {exc}") from exc
    finally:
        if connection.is_open:
            connection.close()


def _properties(row: OutboxMessage) -> pika.BasicProperties:
    """The properties the relay gave the message (same message id, correlation id, type)."""
    return message_properties(PendingRow(
        id=row.id, message_id=str(row.message_id), exchange=row.exchange, routing_key=row.queue, type=row.type,
        correlation_id=row.correlation_id, causation_id=row.causation_id, producer=row.producer,
        created=int(row.created_at.timestamp()), body=b"", traceparent=row.traceparent))


def gaps_describe(gaps: Iterable[Gap], *, now: datetime) -> Iterator[str]:
    for gap in gaps:
        yield (f"{gap.message_id} {gap.type} order={gap.order_id} queue={gap.queue} "
               f"age={gap.age_seconds(now):.0f}s")

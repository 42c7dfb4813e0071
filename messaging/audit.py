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


def deliveries_unaccounted(*, grace: timedelta, now: datetime | None = None) -> AuditFindings:
    """Every gap among the messages published before ``now - grace``, oldest first."""
    now = now or timezone.now()
    findings = AuditFindings()
    published = (OutboxMessage.objects.filter(published_at__isnull=False, published_at__lte=now - grace)
                 .order_by("id").values_list("id", "message_id", "exchange", "queue", "type", "correlation_id",
                                             "published_at"))
    after = 0
    while True:
        rows = list(published.filter(id__gt=after)[:CHUNK])
        if not rows:
            findings.gaps.sort(key=lambda gap: (gap.outbox_id, gap.queue))
            return findings
        after = rows[-1][0]
        findings.messages += len(rows)
        expected: dict[str, dict[str, tuple]] = defaultdict(dict)  # queue -> message id -> row
        for row in rows:
            for queue in queues_reached(exchange=row[2], routing_key=row[3], type=row[4]):
                expected[queue][str(row[1])] = row
        for queue, by_id in expected.items():
            consumer = _consumer_of(queue)
            if consumer is None:
                continue
            findings.deliveries += len(by_id)
            missing = set(by_id) - set(ProcessedMessage.objects.filter(consumer=consumer, message_id__in=list(by_id))
                                       .values_list("message_id", flat=True))
            if missing:
                missing -= set(DeadLetter.objects.filter(queue=queue, message_id__in=list(missing))
                               .values_list("message_id", flat=True))
            findings.gaps.extend(
                Gap(outbox_id=by_id[m][0], message_id=m, type=by_id[m][4], order_id=by_id[m][5], queue=queue,
                    published_at=by_id[m][6])
                for m in missing
            )


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

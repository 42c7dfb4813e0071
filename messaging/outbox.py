"""outbox_emit() and outbox_publish(): the only ways an app emits a message.

``outbox_emit(queue=...)`` sends to one queue (point-to-point); ``outbox_publish(...)``
publishes an event that every subscribed queue receives (publish-subscribe, see
``messaging.topology.EVENT_SUBSCRIPTIONS``). Both write an outbox row in the caller's
transaction; the relay (``messaging.relay``) publishes it once that transaction committed.

Inside ``outbox_buffered()`` (a worker's transaction: ``messaging.consumer.deliver_together``)
the rows are kept and written together, with ONE multi-row INSERT, when the block ends, still
inside the transaction: a batch of ten messages that emit one each costs one statement instead
of ten (docs/benchmarks.md, "Statements per order"). ``timer_cancel()`` writes what is kept
first, so it sees every timer of the transaction.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from config.request_context import current_request_id
from contracts import Contract
from messaging import topology
from messaging.envelope import current_message
from messaging.models import OutboxMessage
from messaging.payloads import payload_json
from messaging.topology import EVENTS_EXCHANGE
from messaging.tracing import traceparent_now

# What a LISTENing relay waits on. On PostgreSQL every insert into the outbox notifies it, by a
# trigger (migration 0008): on commit, once per transaction.
OUTBOX_NOTIFY_CHANNEL = "outbox"

# The rows written inside outbox_buffered(), not inserted yet (None: insert each at once).
_buffered: contextvars.ContextVar[list[OutboxMessage] | None] = contextvars.ContextVar("outbox_buffered",
                                                                                        default=None)


@contextmanager
def outbox_buffered() -> Iterator[None]:
    """Keep the outbox rows written in the block and insert them together when it ends
    (``outbox_flush``). Caller holds the transaction for the whole block, on the default
    database: the rows commit or roll back with it. A block that raises writes nothing."""
    token = _buffered.set([])
    try:
        yield
        outbox_flush()
    finally:
        _buffered.reset(token)


def outbox_flush() -> None:
    """Insert the rows kept by ``outbox_buffered()`` so far (nothing outside it)."""
    rows = _buffered.get()
    if rows:
        _outbox_insert_many(list(rows), using=DEFAULT_DB_ALIAS)
        rows.clear()


def outbox_emit(
    command: Contract,
    *,
    queue: str,
    correlation_id: UUID | str,
    producer: str,
    due_at: datetime | None = None,
) -> OutboxMessage:
    """Write ``command`` (its type from its contract) for one queue. Caller holds the transaction
    of the state change it announces.

    ``due_at``: the relay publishes it no earlier (a timer, see ``messaging.timers``).
    """
    if queue not in topology.work_queues():
        raise ValueError(f"unknown queue {queue!r}")
    return outbox_write(command, exchange=topology.exchange(), routing_key=queue, correlation_id=correlation_id,
                        producer=producer, due_at=due_at)


def outbox_publish(
    event: Contract,
    *,
    correlation_id: UUID | str,
    producer: str,
) -> OutboxMessage | None:
    """Write ``event`` for every queue subscribed to its type (from its contract). Caller holds the transaction.

    An event the topology knows but no queue subscribes to (``picking.started`` when no
    simulated actor listens, say) is not written: there is no one to deliver it to.
    """
    message_type = _message_type(event)
    if message_type not in topology.EVENT_SUBSCRIPTIONS:
        raise ValueError(f"unknown event {message_type!r}")
    if not topology.EVENT_SUBSCRIPTIONS[message_type]:
        return None
    return outbox_write(event, exchange=EVENTS_EXCHANGE, routing_key=message_type, correlation_id=correlation_id,
                        producer=producer)


def outbox_write(
    payload: Contract,
    *,
    exchange: str,
    routing_key: str,
    correlation_id: UUID | str,
    producer: str,
    due_at: datetime | None = None,
    using: str = DEFAULT_DB_ALIAS,
) -> OutboxMessage:
    """Insert the outbox row of ``payload`` (its type from its contract). Caller holds a transaction on ``using``."""
    message_type = _message_type(payload)
    if not connections[using].in_atomic_block:
        raise RuntimeError(f"{message_type} must be written inside the transaction of the change it announces")
    body = payload_json(payload)
    # What caused this message: the message being handled, else the HTTP request being served.
    cause = current_message.get()
    causation_id = cause.message_id if cause else (current_request_id.get() or "")
    now = timezone.now()
    # next_attempt_at: when the relay may send it (at once, or a timer's due time)
    row = OutboxMessage(
        exchange=exchange, queue=routing_key, type=message_type, correlation_id=str(correlation_id),
        causation_id=causation_id, producer=producer, payload=body, due_at=due_at, created_at=now,
        next_attempt_at=due_at or now, traceparent=traceparent_now(),
    )
    buffered = _buffered.get()
    if buffered is not None and using == DEFAULT_DB_ALIAS:
        buffered.append(row)
        return row
    return _outbox_insert_many([row], using=using)[0]


def _message_type(payload: Contract) -> str:
    if not isinstance(payload, Contract):
        raise TypeError(f"a message payload is a contract instance (contracts/), not {type(payload).__name__}")
    return payload.message_type()


# Every column of a new row but the id, which the database numbers.
_INSERTED_FIELDS = [field for field in OutboxMessage._meta.concrete_fields if not field.primary_key]


def _outbox_insert_many(rows: list[OutboxMessage], *, using: str) -> list[OutboxMessage]:
    """``row.save(force_insert=True)`` for each row, as ONE written-out multi-row INSERT: the rows
    are the same (their field values prepared by the fields themselves), without the ORM
    building the statement anew for each of the rows every handler writes (pipeline benchmark:
    15.8 -> 17.8 orders/s, CPU per order 75.3 -> 66.6 ms, docs/benchmarks.md). The ids come back in the
    order of the rows (PostgreSQL and SQLite return an INSERT's rows in VALUES order)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    meta = OutboxMessage._meta
    placeholders = f"({', '.join(['%s'] * len(_INSERTED_FIELDS))})"
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    columns = ", ".join(quote(field.column) for field in _INSERTED_FIELDS)
    rows_sql = ", ".join([placeholders] * len(rows))
    # names are the model's own, quoted; the values go as parameters
    sql = f"INSERT INTO {table} ({columns}) VALUES {rows_sql} RETURNING {pk}"  # noqa: S608
    values = [field.get_db_prep_save(getattr(row, field.attname), connection)
              for row in rows for field in _INSERTED_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        ids = [found[0] for found in cursor.fetchall()]
    for row, pk in zip(rows, ids, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = using
    return rows

"""Timers: a timed step is a message with a due time.

``timer_set()`` writes an outbox row in the caller's transaction, like any message: the timer
exists if and only if the change that asks for it commits. The relay does not publish it
before it is due (it leases the unpublished rows in due order, and an idle relay sleeps until
the first due time); then it reaches its queue and a ``manage.py consume`` worker handles it like
any other message: once per message id, retried, parked as a dead letter, shown in the
order's journey. A relay or worker killed at any moment loses nothing: the row stays
unpublished until confirmed, the message stays unacked until handled.

A timer is cancelled by deleting its row while it is not published yet (``timer_cancel()``).
One that was already on its way, or that arrives after the state it was set for has moved on,
must change nothing: every handler of a timer checks the state it acts on (under its lock).
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.db import connection
from django.utils import timezone

from contracts import Contract
from messaging.models import OutboxMessage
from messaging.outbox import outbox_emit, outbox_flush


def timer_set(
    payload: Contract,
    *,
    queue: str,
    correlation_id: UUID | str,
    producer: str,
    after: float,
) -> OutboxMessage:
    """Send ``payload`` (its type from its contract) to ``queue`` ``after`` seconds from now (0 or
    less: due now). Caller holds the transaction."""
    due_at = timezone.now() + timedelta(seconds=max(after, 0.0))
    return outbox_emit(payload, queue=queue, correlation_id=correlation_id, producer=producer, due_at=due_at)


def timer_cancel(contract: type[Contract], *, correlation_id: UUID | str) -> int:
    """Cancel the timers of ``contract``'s type(s) set for ``correlation_id`` that have not gone out yet.

    Caller holds the transaction (and the lock of the state the timer was set for). A timer the
    relay is publishing at this moment may still arrive: its handler finds the state moved on.
    Returns how many were cancelled.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("timer_cancel() must run inside the transaction of the change that cancels")
    outbox_flush()  # a timer set earlier in this transaction and still kept is cancelled too
    types = contract.message_types()
    deleted, _ = OutboxMessage.objects.filter(
        correlation_id=str(correlation_id), type__in=types, due_at__isnull=False, published_at__isnull=True,
    ).delete()
    return deleted

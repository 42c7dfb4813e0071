"""outbox_emit(): the only way an app emits a message."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import connection

from config.request_context import current_request_id
from messaging.envelope import current_message
from messaging.models import OutboxMessage
from messaging.topology import WORK_QUEUES


def outbox_emit(
    *,
    queue: str,
    type: str,
    correlation_id: UUID | str,
    payload: dict[str, Any],
    producer: str,
) -> OutboxMessage:
    """Write an event to the outbox. Caller holds the transaction of the state change it announces."""
    if queue not in WORK_QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_emit() must run inside the transaction of the change it announces")
    # What caused this event: the message being handled, else the HTTP request being served.
    cause = current_message.get()
    causation_id = cause.message_id if cause else (current_request_id.get() or "")
    return OutboxMessage.objects.create(
        queue=queue,
        type=type,
        correlation_id=str(correlation_id),
        causation_id=causation_id,
        producer=producer,
        payload=payload,
    )

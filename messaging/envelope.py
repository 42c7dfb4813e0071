"""The message as handlers see it, its decoding from an AMQP delivery, and the AMQP properties
every message is sent with."""

from __future__ import annotations

import contextvars
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pika

from messaging.bounded_json import JSONTooDeep, json_loads_bounded


class InvalidMessage(Exception):
    """A message that can never be handled as it is (bad JSON, missing fields, unknown type)."""


@dataclass(frozen=True)
class Message:
    queue: str
    message_id: str
    type: str
    correlation_id: str
    causation_id: str
    payload: dict[str, Any]
    producer: str = ""
    redelivered: bool = False
    retry_attempt: int = 0
    headers: dict[str, Any] = field(default_factory=dict)
    # When it was written (the AMQP timestamp, whole seconds): the same for every delivery of it.
    created_at: datetime | None = None


# The message being handled in this process, so that outbox_emit() can record what caused
# the events a handler writes without every service having to pass it along.
current_message: contextvars.ContextVar[Message | None] = contextvars.ContextVar("current_message", default=None)


MAX_BODY_BYTES = 256 * 1024


def decode(queue: str, properties: Any, body: bytes, *, redelivered: bool = False) -> Message:
    headers = dict(getattr(properties, "headers", None) or {})
    message_id = getattr(properties, "message_id", None) or ""
    msg_type = getattr(properties, "type", None) or headers.get("type") or ""
    correlation_id = getattr(properties, "correlation_id", None) or ""
    if not message_id:
        raise InvalidMessage("message has no message_id property")
    if not msg_type:
        raise InvalidMessage("message has no type property")
    if len(body) > MAX_BODY_BYTES:
        raise InvalidMessage(f"message body is {len(body)} bytes, more than {MAX_BODY_BYTES}")
    try:
        payload = json_loads_bounded(body.decode("utf-8"))
    except JSONTooDeep as exc:
        raise InvalidMessage(f"message body is JSON {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"message body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidMessage(f"message body must be a JSON object, got {type(payload).__name__}")
    retry_attempt = headers.get("x-retry-attempt", 0)
    return Message(
        queue=queue,
        message_id=str(message_id)[:64],
        type=str(msg_type),
        correlation_id=str(correlation_id)[:64],
        causation_id=str(headers.get("causation_id") or "")[:64],
        producer=str(headers.get("producer") or ""),
        payload=payload,
        redelivered=redelivered,
        retry_attempt=retry_attempt if isinstance(retry_attempt, int) else 0,
        headers=headers,
        created_at=_written_at(getattr(properties, "timestamp", None)),
    )


def _written_at(timestamp: Any) -> datetime | None:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return None
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def message_properties_build(*, message_id: str, correlation_id: str, type: str, timestamp: int | None,
                             headers: dict[str, Any], content_type: str | None = "application/json",
                             ) -> pika.BasicProperties:
    """The properties of a message sent (by the relay, or again by a worker that retries it):
    persistent, and the contract's message_id, correlation_id (the order) and type."""
    return pika.BasicProperties(
        content_type=content_type,
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=message_id,
        correlation_id=correlation_id,
        type=type,
        timestamp=timestamp,
        headers=headers,
    )

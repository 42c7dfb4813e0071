"""One trace per order: the W3C trace context travels with every message (OpenTelemetry).

An outbox row keeps the ``traceparent`` of the span current when it was written (the HTTP
request's, or the handler's of the message that caused it); the relay sends it as a message
header; a worker continues it: the handler runs in a span whose parent is that context, so
whatever it writes carries the same trace id. Every message that follows from one request
shares that request's trace id.

Two more spans per message show where it waited: ``outbox wait`` (written -> confirmed by the
broker, recorded by the relay) and ``queue wait`` (published -> taken by a worker).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

tracer = trace.get_tracer("logistics.messaging")

# Whether spans leave the process (an exporter is configured, see observability.tracing): the
# waiting spans are made only then; the handler's span always is, as it carries the trace on.
exporting = False

TRACEPARENT = "traceparent"
# When the relay handed the message to the broker (epoch milliseconds): where a queue wait starts.
PUBLISHED_AT_MS = "published_at_ms"


def traceparent_now() -> str:
    """The current span's context as a W3C ``traceparent`` ("" when there is none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def trace_id_of(traceparent: str) -> str:
    """The trace id of a ``traceparent`` ("" when it is not one)."""
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else ""


def _context(traceparent: str):
    return propagate.extract({TRACEPARENT: traceparent} if traceparent else {})


def _ns(moment: datetime | float) -> int:
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    return int(seconds * 1_000_000_000)


def outbox_waited(*, traceparent: str, type: str, written_at: datetime | None, published_at: float) -> None:
    """The time a message waited in the outbox (written -> confirmed), as a span of its trace."""
    if exporting and traceparent and written_at is not None:
        tracer.start_span(f"outbox wait {type}", context=_context(traceparent), kind=SpanKind.PRODUCER,
                          start_time=_ns(written_at)).end(end_time=_ns(published_at))


@contextmanager
def message_handling(*, queue: str, type: str, message_id: str, headers: dict) -> Iterator[None]:
    """Handle a message in a span that continues its trace (and record its queue wait)."""
    found = headers.get(TRACEPARENT)
    traceparent = found if isinstance(found, str) else ""
    context = _context(traceparent)
    published_ms = headers.get(PUBLISHED_AT_MS)
    if exporting and traceparent and isinstance(published_ms, int | float):
        tracer.start_span(f"queue wait {queue}", context=context, kind=SpanKind.CONSUMER,
                          start_time=_ns(published_ms / 1000)).end(end_time=_ns(time.time()))
    with tracer.start_as_current_span(f"handle {type}", context=context, kind=SpanKind.CONSUMER,
                                      attributes={"messaging.destination.name": queue,
                                                  "messaging.message.id": message_id,
                                                  "messaging.message.type": type}):
        yield

"""Which function handles which message type on which queue.

Apps declare their handlers with ``@message_handler(queue, type)`` in ``handlers.py``;
``consume <queue>`` looks them up here. A type whose messages often arrive many at a time may
have a ``@message_batch_handler`` instead: it receives the run of them a worker handles in one
transaction (``MessageBatch``), reads what they need in one statement, and
then handles each one in its own turn (``batch.each()``), as a handler of one would.

A batch handler that must call the outside world (a payment provider) declares a ``prepare``:
the worker runs it on the batch's messages BEFORE its transaction opens, with no transaction
and no lock held, and hands its result to the handler as ``batch.prepared``; the handler then
records it in the worker's transaction, together with the messages' processed records. The
prepare must be safe to run again for the same messages (a redelivery after a crash runs it
again): it asks with idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from messaging.envelope import InvalidMessage, Message, current_message
from messaging.tracing import message_handling


@contextmanager
def message_scope(queue: str, message: Message) -> Iterator[Message]:
    """Handling ``message``: what is written meanwhile names it as its cause and carries its
    trace on (the handler's span continues the message's trace)."""
    token = current_message.set(message)
    try:
        with message_handling(queue=queue, type=message.type, message_id=message.message_id,
                              headers=message.headers):
            yield message
    finally:
        current_message.reset(token)


class MessageBatch:
    """The messages of one type a worker handles together, in order, in one transaction."""

    def __init__(self, queue: str, messages: list[Message], *, prepared: Any = None):
        self.queue = queue
        self.messages = messages
        self.prepared = prepared  # what the handler's prepare returned for these messages (None: none)
        self.handled = 0  # how many went through each()

    def __iter__(self) -> Iterator[Message]:
        return iter(self.messages)

    def __len__(self) -> int:
        return len(self.messages)

    def each(self) -> Iterator[Message]:
        """Each message in turn, inside its own scope (``message_scope``)."""
        for message in self.messages:
            with message_scope(self.queue, message):
                yield message
            self.handled += 1


Handler = Callable[[Message], None]
BatchHandler = Callable[[MessageBatch], None]
Prepare = Callable[[MessageBatch], Any]


@dataclass
class QueueRoute:
    queue: str
    consumer: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    prepares: dict[str, Prepare] = field(default_factory=dict)

    def batch_handler_for(self, message_type: str) -> BatchHandler | None:
        return self.batch_handlers.get(message_type)

    def handler_for(self, message_type: str) -> Handler:
        try:
            return self.handlers[message_type]
        except KeyError:
            known = ", ".join(sorted(self.handlers)) or "none"
            raise InvalidMessage(f"unknown message type {message_type!r} on {self.queue} (known: {known})") from None


_routes: dict[str, QueueRoute] = {}


def message_handler(queue: str, message_type: str, *, consumer: str) -> Callable[[Handler], Handler]:
    """Register ``func(message)`` as the handler of ``message_type`` on ``queue``."""
    def register(func: Handler) -> Handler:
        _route_new_type(queue, message_type, consumer).handlers[message_type] = func
        return func

    return register


def message_batch_handler(queue: str, message_type: str, *, consumer: str,
                          prepare: Prepare | None = None) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``func(batch)`` as the handler of ``message_type`` on ``queue``: it receives the
    messages of that type a worker handles together (one or more, in order, duplicates left out)
    and must handle each one inside ``batch.each()``. ``prepare(batch)``, if given, runs first
    with no transaction open (``prepared_outside_transaction``); its result is ``batch.prepared``."""
    def register(func: BatchHandler) -> BatchHandler:
        route = _route_new_type(queue, message_type, consumer)
        route.batch_handlers[message_type] = func
        if prepare is not None:
            route.prepares[message_type] = prepare
        route.handlers[message_type] = lambda message: batch_handle(func, MessageBatch(queue, [message]))
        return func

    return register


def batch_handle(handler: BatchHandler, batch: MessageBatch) -> None:
    """Run a batch handler; one that returns before handling every message is a bug, not a
    success: it raises (and its transaction rolls back), so no message is recorded as handled
    without having been."""
    handler(batch)
    if batch.handled != len(batch):
        raise RuntimeError(f"{handler.__qualname__} handled {batch.handled} of {len(batch)} messages "
                           f"on {batch.queue}: a batch handler must go through batch.each()")


def prepared_outside_transaction(route: QueueRoute, messages: list[Message]) -> dict[str, Any]:
    """Run the prepares of the messages' types (each once, on that type's messages in order), by
    type. Caller has no transaction open: a prepare calls the outside world and opens the short
    transactions it needs itself."""
    prepared = {}
    for message_type, prepare in route.prepares.items():
        of_type = [message for message in messages if message.type == message_type]
        if of_type:
            if connection.in_atomic_block:
                raise RuntimeError(f"the prepare of {message_type} on {route.queue} must run with no transaction open")
            prepared[message_type] = prepare(MessageBatch(route.queue, of_type))
    return prepared


def _route_new_type(queue: str, message_type: str, consumer: str) -> QueueRoute:
    route = _routes.setdefault(queue, QueueRoute(queue=queue, consumer=consumer))
    if route.consumer != consumer:
        raise RuntimeError(f"queue {queue} already consumed by {route.consumer}, not {consumer}")
    if message_type in route.handlers:
        raise RuntimeError(f"two handlers for {message_type} on {queue}")
    return route


def route_for(queue: str) -> QueueRoute:
    try:
        return _routes[queue]
    except KeyError:
        known = ", ".join(sorted(_routes)) or "none"
        raise LookupError(f"no consumer for queue {queue!r}; queues with consumers: {known}") from None


def routes() -> dict[str, QueueRoute]:
    return dict(_routes)

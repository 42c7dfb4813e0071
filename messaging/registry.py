"""Which function handles which message type on which queue.

Apps declare their handlers with ``@message_handler(queue, OrderPlaced, consumer=...)`` in
``handlers.py``; ``consume <queue>`` looks them up here. The handler is registered for every
type of the contract and receives ``(data, message)``: the payload validated against the
contract (once, here, before the handler runs: one that breaks it raises InvalidMessage and
is parked) and the envelope. A type whose messages often arrive many at a time may have a
``@message_batch_handler`` instead: it receives the run of them a worker handles in one
transaction (``MessageBatch``), reads what they need in one statement (``batch.payloads``),
and then handles each one in its own turn (``for data, message in batch.each()``), as a
handler of one would.

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
from typing import Any, Generic, TypeVar

from django.db import connection

from contracts import Contract
from messaging.envelope import InvalidMessage, Message, current_message
from messaging.payloads import payload_validated
from messaging.tracing import message_handling

C = TypeVar("C", bound=Contract)


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


class MessageBatch(Generic[C]):
    """The messages of one type a worker handles together, in order, in one transaction, each
    with its payload validated against the handler's contract."""

    def __init__(self, queue: str, pairs: list[tuple[C, Message]], *, prepared: Any = None):
        self.queue = queue
        self.pairs = pairs
        self.prepared = prepared  # what the handler's prepare returned for these messages (None: none)
        self.handled = 0  # how many went through each()

    @property
    def payloads(self) -> list[C]:
        """Every validated payload, up front: what the handler reads or locks in one statement first."""
        return [data for data, _ in self.pairs]

    @property
    def messages(self) -> list[Message]:
        return [message for _, message in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def each(self) -> Iterator[tuple[C, Message]]:
        """Each ``(payload, message)`` in turn, inside the message's own scope (``message_scope``)."""
        for data, message in self.pairs:
            with message_scope(self.queue, message):
                yield data, message
            self.handled += 1


Handler = Callable[[Any, Message], None]
ContractHandler = Callable[[C, Message], None]
BatchHandler = Callable[[MessageBatch], None]
Prepare = Callable[[MessageBatch], Any]


@dataclass
class QueueRoute:
    queue: str
    consumer: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    batch_handlers: dict[str, BatchHandler] = field(default_factory=dict)
    contracts: dict[str, type[Contract]] = field(default_factory=dict)
    prepares: dict[str, Prepare] = field(default_factory=dict)

    def batch_handler_for(self, message_type: str) -> BatchHandler | None:
        return self.batch_handlers.get(message_type)

    def handler_for(self, message_type: str) -> Handler:
        try:
            return self.handlers[message_type]
        except KeyError:
            known = ", ".join(sorted(self.handlers)) or "none"
            raise InvalidMessage(f"unknown message type {message_type!r} on {self.queue} (known: {known})") from None

    def validated(self, message: Message) -> Contract:
        """``message``'s payload as its handler's contract: InvalidMessage (-> dead letter) when
        the type has no handler here or the payload breaks the contract."""
        self.handler_for(message.type)
        return payload_validated(self.contracts[message.type], message)


_routes: dict[str, QueueRoute] = {}


def message_handler(
    queue: str, contract: type[C], *, consumer: str
) -> Callable[[ContractHandler[C]], ContractHandler[C]]:
    """Register ``func(data, message)`` as the handler of ``contract``'s message type(s) (its
    ``TYPE``, or each of its ``TYPES``) on ``queue``: it receives the validated payload and the
    envelope (ids, causation, correlation, trace headers)."""
    types = _types_of(contract)

    def register(func: ContractHandler[C]) -> ContractHandler[C]:
        for message_type in types:
            route = _route_new_type(queue, message_type, consumer)
            route.handlers[message_type] = func
            route.contracts[message_type] = contract
        return func

    return register


def message_batch_handler(queue: str, contract: type[C], *, consumer: str,
                          prepare: Prepare | None = None) -> Callable[[BatchHandler], BatchHandler]:
    """Register ``func(batch)`` as the handler of ``contract``'s message type(s) on ``queue``: it
    receives the messages of that type a worker handles together (one or more, in order,
    duplicates left out, payloads validated: ``batch.payloads``) and must handle each one inside
    ``for data, message in batch.each()``. ``prepare(batch)``, if given, runs first with no
    transaction open (``prepared_outside_transaction``); its result is ``batch.prepared``."""
    types = _types_of(contract)

    def register(func: BatchHandler) -> BatchHandler:
        for message_type in types:
            route = _route_new_type(queue, message_type, consumer)
            route.batch_handlers[message_type] = func
            route.handlers[message_type] = (
                lambda data, message: batch_handle(func, MessageBatch(queue, [(data, message)])))
            route.contracts[message_type] = contract
            if prepare is not None:
                route.prepares[message_type] = prepare
        return func

    return register


def _types_of(contract: type[Contract]) -> tuple[str, ...]:
    if not (isinstance(contract, type) and issubclass(contract, Contract)):
        raise TypeError(f"a handler is registered for a contract class (contracts/), not {contract!r}")
    types = contract.message_types()
    if not types:
        raise TypeError(f"{contract.__name__} names no message type")
    return types


def batch_handle(handler: BatchHandler, batch: MessageBatch) -> None:
    """Run a batch handler; one that returns before handling every message is a bug, not a
    success: it raises (and its transaction rolls back), so no message is recorded as handled
    without having been."""
    handler(batch)
    if batch.handled != len(batch):
        raise RuntimeError(f"{handler.__qualname__} handled {batch.handled} of {len(batch)} messages "
                           f"on {batch.queue}: a batch handler must go through batch.each()")


def prepared_outside_transaction(route: QueueRoute, messages: list[Message]) -> dict[str, Any]:
    """Run the prepares of the messages' types (each once, on that type's messages in order,
    payloads validated), by type. Caller has no transaction open: a prepare calls the outside
    world and opens the short transactions it needs itself."""
    prepared = {}
    for message_type, prepare in route.prepares.items():
        of_type = [message for message in messages if message.type == message_type]
        if of_type:
            if connection.in_atomic_block:
                raise RuntimeError(f"the prepare of {message_type} on {route.queue} must run with no transaction open")
            pairs = [(route.validated(message), message) for message in of_type]
            prepared[message_type] = prepare(MessageBatch(route.queue, pairs))
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

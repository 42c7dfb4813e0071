"""Which function handles which message type on which queue.

Apps declare their handlers with ``@message_handler(queue, type)`` in ``handlers.py``;
``consume <queue>`` looks them up here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from messaging.envelope import InvalidMessage, Message

Handler = Callable[[Message], None]


@dataclass
class QueueRoute:
    queue: str
    consumer: str
    handlers: dict[str, Handler] = field(default_factory=dict)

    def handler_for(self, message_type: str) -> Handler:
        try:
            return self.handlers[message_type]
        except KeyError:
            known = ", ".join(sorted(self.handlers)) or "none"
            raise InvalidMessage(f"unknown message type {message_type!r} on {self.queue} (known: {known})") from None


_routes: dict[str, QueueRoute] = {}


def message_handler(queue: str, message_type: str, *, consumer: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        route = _routes.setdefault(queue, QueueRoute(queue=queue, consumer=consumer))
        if route.consumer != consumer:
            raise RuntimeError(f"queue {queue} already consumed by {route.consumer}, not {consumer}")
        if message_type in route.handlers:
            raise RuntimeError(f"two handlers for {message_type} on {queue}")
        route.handlers[message_type] = func
        return func

    return register


def route_for(queue: str) -> QueueRoute:
    try:
        return _routes[queue]
    except KeyError:
        known = ", ".join(sorted(_routes)) or "none"
        raise LookupError(f"no consumer for queue {queue!r}; queues with consumers: {known}") from None


def routes() -> dict[str, QueueRoute]:
    return dict(_routes)

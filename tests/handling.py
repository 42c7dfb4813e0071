"""A message handed to its handler as a worker hands it: the payload validated against the
handler's contract (InvalidMessage when it breaks it), the handler run in the message's scope.
Without the inbox record, so a test can hand the same message twice (a redelivery that the
processed record would have stopped) and see the handler itself change nothing."""

from __future__ import annotations

from messaging.envelope import Message
from messaging.registry import message_scope, route_for


def handled(message: Message) -> None:
    route = route_for(message.queue)
    data = route.validated(message)
    with message_scope(message.queue, message):
        route.handler_for(message.type)(data, message)

"""Publishing with a window of unconfirmed messages (publisher confirms, ``mandatory``).

Waiting for each confirm before the next publish caps a relay at about one message per
round trip. ``ConfirmingPublisher`` keeps up to ``window`` messages in flight on one
channel and collects the broker's (possibly ``multiple``) acks, so a batch costs about one
round trip per window. It runs pika's ``SelectConnection`` I/O loop only while a batch is
being published, which keeps the relay's own loop plain synchronous code.

A message counts as confirmed only when the broker acked it and did not return it as
unroutable (a ``basic.return`` always arrives before the ack of the same message).

Given the parameters of several nodes (a cluster), ``open`` tries them in turn and keeps the
first that answers; a batch cut short by a lost node reports what was confirmed, and the rest
goes out again on the next connection.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pika
from pika.exceptions import AMQPConnectionError

logger = logging.getLogger("messaging.publisher")


@dataclass(frozen=True)
class Outgoing:
    key: Hashable  # the caller's handle (an outbox row id)
    exchange: str
    routing_key: str
    body: bytes
    properties: pika.BasicProperties


@dataclass
class BatchResult:
    confirmed: list[Hashable] = field(default_factory=list)
    failed: dict[Hashable, str] = field(default_factory=dict)
    error: Exception | None = None  # the connection broke mid-batch; unconfirmed messages are neither


class PublisherError(AMQPConnectionError):
    pass


class ConfirmingPublisher:
    def __init__(self, parameters: pika.ConnectionParameters | Sequence[pika.ConnectionParameters], *,
                 window: int = 100, confirm_timeout: float = 30.0) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.nodes = [parameters] if isinstance(parameters, pika.ConnectionParameters) else list(parameters)
        if not self.nodes:
            raise ValueError("no broker node to connect to")
        self.window = window
        self.confirm_timeout = confirm_timeout
        self._connection: Any = None  # a pika.SelectConnection (untyped) once _open() made one
        self._channel = None
        self._closing = False
        self._open_error: Exception | None = None
        self._closed_error: Exception | None = None
        self._settled_upto = 0  # every tag up to this one was confirmed (or refused)
        self._reset_batch()

    # -- connection ------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return (
            self._connection is not None and self._connection.is_open
            and self._channel is not None and self._channel.is_open
        )

    def open(self) -> None:
        """Connect to the first node that answers, in the order given."""
        error: Exception | None = None
        for parameters in self.nodes:
            try:
                self._open(parameters)
                return
            except AMQPConnectionError as exc:
                error = exc
                if len(self.nodes) > 1:
                    logger.warning("broker node %s:%s did not answer (%r)", parameters.host, parameters.port, exc)
        raise error or PublisherError("no broker node to connect to")

    def _open(self, parameters: pika.ConnectionParameters) -> None:
        self._open_error = None
        self._closed_error = None
        self._ready = False
        self._connection = pika.SelectConnection(
            parameters=parameters,
            on_open_callback=self._on_connection_open,
            on_open_error_callback=self._on_connection_open_error,
            on_close_callback=self._on_connection_closed,
        )
        timer = self._connection.ioloop.call_later(self.confirm_timeout, self._on_open_timeout)
        self._connection.ioloop.start()
        self._connection.ioloop.remove_timeout(timer)
        if self._open_error is not None or not self._ready:
            error = self._open_error or PublisherError("broker connection did not open")
            self.close()
            raise error if isinstance(error, AMQPConnectionError) else PublisherError(repr(error))

    def close(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        try:
            if connection.is_open:
                connection.close()
                connection.ioloop.start()  # until the close handshake finished
        except Exception:  # noqa: BLE001 - closing a broken connection
            logger.debug("error while closing publisher connection", exc_info=True)
        finally:
            self._connection, self._channel, self._closing = None, None, False

    def _on_connection_open(self, connection) -> None:
        connection.channel(on_open_callback=self._on_channel_open)

    def _on_connection_open_error(self, connection, error) -> None:
        self._open_error = error if isinstance(error, Exception) else PublisherError(str(error))
        connection.ioloop.stop()

    def _on_open_timeout(self) -> None:
        self._open_error = PublisherError("timed out opening the broker connection")
        self._connection.ioloop.stop()

    def _on_connection_closed(self, connection, reason) -> None:
        self._closed_error = reason if isinstance(reason, Exception) else PublisherError(str(reason))
        self._channel = None
        connection.ioloop.stop()

    def _on_channel_open(self, channel) -> None:
        self._channel = channel
        self._next_tag = self._settled_upto = 0  # a new channel counts delivery tags from 1
        channel.add_on_return_callback(self._on_return)
        channel.add_on_close_callback(self._on_channel_closed)
        channel.confirm_delivery(self._on_confirm, self._on_select_ok)

    def _on_select_ok(self, _frame) -> None:
        self._ready = True
        self._connection.ioloop.stop()

    def _on_channel_closed(self, channel, reason) -> None:
        self._channel = None
        if self._closing:
            return  # the connection's own close follows
        self._closed_error = reason if isinstance(reason, Exception) else PublisherError(str(reason))
        connection = channel.connection
        if connection.is_open:
            connection.close()  # _on_connection_closed stops the loop
        else:
            connection.ioloop.stop()

    # -- one batch -------------------------------------------------------------------------
    def _reset_batch(self) -> None:
        self._pending: deque[Outgoing] = deque()
        self._inflight: dict[int, Outgoing] = {}
        self._returned: dict[str, str] = {}
        self._result = BatchResult()
        self._next_tag = getattr(self, "_next_tag", 0)

    def publish_batch(self, messages: Iterable[Outgoing]) -> BatchResult:
        """Publish every message; returns which were confirmed and which failed (and why)."""
        if not self.is_open:
            self.open()
        self._reset_batch()
        self._pending.extend(messages)
        if not self._pending:
            return self._result
        ioloop = self._connection.ioloop
        timer = ioloop.call_later(self.confirm_timeout, self._on_confirm_timeout)
        self._pump()  # first window out now (a thread-safe callback would cost a wake-up pipe round trip)
        ioloop.start()
        if self._connection is not None:
            self._connection.ioloop.remove_timeout(timer)
        result = self._result
        if self._inflight or self._pending:
            result.error = result.error or self._closed_error or PublisherError("batch not fully confirmed")
            self.close()
        return result

    def _pump(self) -> None:
        channel = self._channel
        while self._pending and len(self._inflight) < self.window and channel is not None and channel.is_open:
            message = self._pending.popleft()
            channel.basic_publish(message.exchange, message.routing_key, message.body, message.properties,
                                  mandatory=True)
            self._next_tag += 1
            self._inflight[self._next_tag] = message
        self._coalesce_writes()
        if not self._pending and not self._inflight:
            self._connection.ioloop.stop()

    def _coalesce_writes(self) -> None:
        """Hand the socket what this pump wrote as one buffer.

        pika queues each frame (three per message) as its own buffer and sends each with a
        ``send()`` of its own; on a backlog those system calls were a quarter of the relay's CPU
        time, and tiny segments cost the broker reads too. pika 1.x keeps the queue in
        ``_tx_buffers``; without it (another version) the frames simply go one by one.
        """
        buffers = getattr(getattr(self._connection, "_transport", None), "_tx_buffers", None)
        if buffers is not None and len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)

    def _on_return(self, _channel, method, properties, _body) -> None:
        self._returned[properties.message_id] = (
            f"unroutable: {method.reply_text} (exchange {method.exchange!r}, routing key {method.routing_key!r})"
        )

    def _on_confirm(self, frame) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        for message in self._settled(method.delivery_tag, multiple=method.multiple):
            returned = self._returned.pop(message.properties.message_id, None)
            if not acked:
                self._result.failed[message.key] = "broker refused the message (nack)"
            elif returned is not None:
                self._result.failed[message.key] = returned
            else:
                self._result.confirmed.append(message.key)
        self._pump()

    def _settled(self, tag: int, *, multiple: bool) -> list[Outgoing]:
        """The in-flight messages a confirm of ``tag`` covers, oldest first.

        Tags are handed out one by one, so a ``multiple`` confirm covers the tags after the last
        one it covered up to ``tag``: no scan of the whole window for each confirm.
        """
        if not multiple:
            message = self._inflight.pop(tag, None)
            return [] if message is None else [message]
        first, self._settled_upto = self._settled_upto + 1, max(tag, self._settled_upto)
        return [message for t in range(first, tag + 1) if (message := self._inflight.pop(t, None)) is not None]

    def _on_confirm_timeout(self) -> None:
        self._result.error = PublisherError(f"no confirm within {self.confirm_timeout:.0f}s")
        self._connection.ioloop.stop()

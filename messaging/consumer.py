"""Queue workers: manual acks after commit, idempotent handling, retry and dead letters.

For every delivery the worker

1. decodes the envelope (message_id, type, correlation_id, JSON object body);
2. in ONE database transaction records ``ProcessedMessage(consumer, message_id)``
   (``messaging.inbox``) and runs the handler -- a message already recorded is a duplicate
   and changes nothing; the services the handler calls open savepoints inside it
   (``@transaction.atomic``);
3. acks only after that transaction committed.

Two things make a busy worker cheaper (each worth more than 10% on the pipeline benchmark,
docs/benchmarks.md): the deliveries a worker already holds are handled together in one
transaction (``CONSUMER_TRANSACTION_BATCH``; all or nothing, then one by one after any
failure), and committed deliveries are acknowledged together (``CONSUMER_ACK_BATCH``). In that
transaction, consecutive messages of a type with a batch handler reach it together
(``messaging.registry.message_batch_handler``: the charge timers lock their payments at once).

One worker process may consume several queues (``manage.py consume new_orders support_requests
...``): one broker connection, a channel per queue (its own prefetch and acks), each queue's
deliveries handled in turn (``Worker``). Fewer processes cost less CPU per message on a small
machine: see the Procfile and docs/benchmarks.md.

A message that can never succeed (invalid envelope or payload, unknown type, a
``DomainError``) is parked at once as a ``DeadLetter`` row. Any other failure (database
unavailable, deadlock, lock timeout, a bug) is retried through the ``Q.retry.N`` delay
queues and parked after the last one -- except while the database does not answer at all
(restarted, failing over): then the worker hands its deliveries back, waits until it answers
and consumes again, so an outage of any length costs no retry. If even the dead-letter row
cannot be written, the message is rejected to the broker's ``Q.dlq``: nothing is dropped.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import dataclass
from typing import Any

import pika
from django.conf import settings
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction

from config.errors import DomainError
from messaging import broker, topology
from messaging.envelope import InvalidMessage, Message, decode, message_properties_build
from messaging.faults import fault_point
from messaging.heartbeats import Heartbeat
from messaging.inbox import processed_records
from messaging.metrics import message_observed
from messaging.models import DeadLetter, WorkerHeartbeat
from messaging.outbox import outbox_buffered
from messaging.registry import (
    MessageBatch,
    QueueRoute,
    batch_handle,
    message_scope,
    prepared_outside_transaction,
    route_for,
)

logger = logging.getLogger("messaging.consumer")

# A delivery as pika hands it over: (method, properties, body).
Delivery = tuple[Any, Any, bytes]

HANDLED = "handled"
DUPLICATE = "duplicate"
RETRY = "retry"
PARKED = "parked"


class DatabaseAway(Exception):
    """The database does not answer at all: stop consuming until it does."""


def database_answers() -> bool:
    """A fresh connection to the database opens (not merely: the last statement failed)."""
    try:
        connection.close()
        connection.ensure_connection()
    except DatabaseError:
        return False
    return True


def deliver(route: QueueRoute, message: Message) -> str:
    """Run the handler for ``message`` once. Returns HANDLED or DUPLICATE.

    Raises whatever the handler raises; the transaction (and the processed record with
    it) is then rolled back, so the message can be tried again.
    """
    return deliver_together(route, [message])[0]


def deliver_together(route: QueueRoute, messages: list[Message]) -> list[str]:
    """Run the handlers of several messages, in order, in ONE transaction. Returns each one's outcome.

    All or nothing: whatever one handler raises rolls every message back (none is recorded
    as processed) and is raised. A message later in the list sees what the earlier ones
    wrote, exactly as if they had been handled one after the other. Consecutive messages of a
    type with a batch handler (``messaging.registry.message_batch_handler``) go to it together.
    The outbox rows the handlers write are inserted together before the commit
    (``messaging.outbox.outbox_buffered``).

    A batch handler's ``prepare`` (a call to the outside world) runs first, before the
    transaction opens: nothing is locked while it waits, and what it returns is recorded in
    the transaction with the processed records (a crash in between runs it again).
    """
    prepared = prepared_outside_transaction(route, messages)
    with transaction.atomic(), outbox_buffered():
        first_time = processed_records(consumer=route.consumer, message_ids=[m.message_id for m in messages],
                                       created=[m.created_at for m in messages])
        outcomes = []
        run: list[Message] = []  # consecutive new messages of one type
        for message in messages:
            if run and message.type != run[-1].type:
                _handle_run(route, run, prepared)
                run = []
            if message.message_id in first_time:
                first_time.discard(message.message_id)  # the same message twice in the list: once
                run.append(message)
                outcomes.append(HANDLED)
            else:
                outcomes.append(DUPLICATE)
        _handle_run(route, run, prepared)
        return outcomes


def _handle_run(route: QueueRoute, messages: list[Message], prepared: dict[str, Any]) -> None:
    if not messages:
        return
    # every payload validated before any handler of the run runs (InvalidMessage -> parked)
    pairs = [(route.validated(message), message) for message in messages]
    batch_handler = route.batch_handler_for(messages[0].type)
    if batch_handler is not None:
        batch_handle(batch_handler, MessageBatch(route.queue, pairs, prepared=prepared.get(messages[0].type)))
        return
    for data, message in pairs:
        handler = route.handler_for(message.type)
        with message_scope(route.queue, message):
            handler(data, message)


def dead_letter_record(
    *, queue: str, properties: Any, body: bytes, reason: str, error: str, attempts: int
) -> DeadLetter:
    """Park a message, once per queue and message id (a redelivery after a lost ack finds it parked)."""
    headers = _plain_headers(getattr(properties, "headers", None) or {})
    message_id = _db_text(str(getattr(properties, "message_id", "") or ""))[:64]
    fields = {
        "type": _db_text(str(getattr(properties, "type", "") or headers.get("type", "") or ""))[:100],
        "correlation_id": _db_text(str(getattr(properties, "correlation_id", "") or ""))[:64],
        "headers": headers,
        "body": _db_text(body.decode("utf-8", errors="replace")),
        "reason": reason,
        "error": _db_text(error)[:4000],
        "attempts": attempts,
    }
    if not message_id:
        return DeadLetter.objects.create(queue=queue, message_id="", **fields)
    try:
        with transaction.atomic():
            letter, _ = DeadLetter.objects.get_or_create(queue=queue, message_id=message_id, defaults=fields)
    except IntegrityError:  # parked by another worker at the same moment
        letter = DeadLetter.objects.get(queue=queue, message_id=message_id)
    return letter


def _db_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL: keep it visible as an escape instead."""
    return text.replace("\x00", "\\u0000")


def _plain_headers(headers: dict) -> dict:
    try:
        return _without_nul(json.loads(json.dumps(headers, default=str)))
    except (TypeError, ValueError):
        return {"unserialisable": _db_text(repr(headers)[:1000])}


def _without_nul(value: Any) -> Any:
    """jsonb refuses NUL in strings and keys as text does."""
    if isinstance(value, str):
        return _db_text(value)
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_db_text(k): _without_nul(v) for k, v in value.items()}
    return value


@dataclass
class WorkerStats:
    handled: int = 0
    duplicates: int = 0
    retried: int = 0
    parked: int = 0


class QueueWorker:
    """One queue's deliveries: handled (alone or together), acknowledged after commit, retried or
    parked. ``run()`` consumes the queue in a process of its own; ``Worker`` runs several."""

    def __init__(self, queue: str, *, prefetch: int, install_signal_handlers: bool = True) -> None:
        self.queue = queue
        self.route = route_for(queue)
        self.prefetch = prefetch
        # never as many as the prefetch: the broker would stop delivering while acks wait
        self.ack_batch = max(1, min(settings.MESSAGING["ACK_BATCH"], prefetch // 2))
        self.transaction_batch = max(1, min(settings.MESSAGING["TRANSACTION_BATCH"], prefetch))
        self._ack_pending_tag: int | None = None
        self._ack_pending = 0
        self.stats = WorkerStats()
        self._install_signal_handlers = install_signal_handlers
        self.heartbeat = Heartbeat(kind=WorkerHeartbeat.Kind.CONSUMER, queue=queue)

    def run(self, *, max_messages: int | None = None, idle_exit_seconds: float | None = None) -> WorkerStats:
        """Consume this queue until stopped (SIGTERM/SIGINT) or a limit is reached."""
        Worker([self], install_signal_handlers=self._install_signal_handlers).run(
            max_messages=max_messages, idle_exit_seconds=idle_exit_seconds)
        return self.stats

    def handle(self, channel, batch: list[tuple[Any, Any, bytes]]) -> None:
        """Handle deliveries received on ``channel`` (at most ``transaction_batch``), in order."""
        if len(batch) == 1:
            self._handle_delivery(channel, *batch[0])
        else:
            self._handle_together(channel, batch)
        self.heartbeat.counted(len(batch))

    # -- one delivery ------------------------------------------------------------------
    def _handle_delivery(self, channel, method, properties, body: bytes) -> None:
        started = time.monotonic()
        close_old_connections()  # as Django before each request: a broken or too old connection is replaced
        msg_type = getattr(properties, "type", None) or "?"
        message_id = getattr(properties, "message_id", None) or "?"
        correlation_id = getattr(properties, "correlation_id", None) or "-"
        try:
            fault_point("consumer.before_handle")
            message = decode(self.queue, properties, body, redelivered=bool(method.redelivered))
            outcome = deliver(self.route, message)
        except (InvalidMessage, DomainError) as exc:
            outcome = self._park(channel, method, properties, body, DeadLetter.Reason.INVALID, exc)
        except Exception as exc:  # any other failure may be transient: retry, then park
            close_old_connections()  # a broken connection is replaced before the next message
            if isinstance(exc, DatabaseError) and not database_answers():
                self._acks_flush(channel)  # what committed is acked; this delivery and the rest go back
                raise DatabaseAway() from exc
            outcome = self._retry_or_park(channel, method, properties, body, exc)
        else:
            fault_point("consumer.after_commit")  # committed, not acked: redelivery must change nothing
            self._settle_committed(channel, method.delivery_tag, outcome)
        logger.info(
            "queue=%s type=%s message_id=%s correlation_id=%s outcome=%s duration_ms=%.1f",
            self.queue, msg_type, message_id, correlation_id, outcome, (time.monotonic() - started) * 1000,
        )
        message_observed(queue=self.queue, outcome=outcome, seconds=time.monotonic() - started)

    def _handle_together(self, channel, batch: list[tuple[Any, Any, bytes]]) -> None:
        """Several deliveries in one transaction: one BEGIN, one COMMIT (one WAL flush, one relay
        wake-up for the rows they write) instead of one each. A burst is the usual case: the
        five stages of a shipment are written in one transaction and arrive together.

        Any failure (a message that does not decode, a handler's error, the database) rolls
        the whole transaction back, and every delivery is then handled on its own the usual
        way, so each one is handled, retried or parked exactly as it would have been alone.
        """
        started = time.monotonic()
        close_old_connections()  # as Django before each request: a broken or too old connection is replaced
        try:
            messages = []
            for method, properties, body in batch:
                fault_point("consumer.before_handle")
                messages.append(decode(self.queue, properties, body, redelivered=bool(method.redelivered)))
            outcomes = deliver_together(self.route, messages)
        except Exception as exc:  # noqa: BLE001 - sorted out below, one delivery at a time
            logger.info("queue=%s %d deliveries handled together failed (%r); handling each on its own",
                        self.queue, len(batch), exc)
            close_old_connections()  # a broken connection is replaced first
            for method, properties, body in batch:
                self._handle_delivery(channel, method, properties, body)
            return
        fault_point("consumer.after_commit")  # committed, not acked: redelivery must change nothing
        seconds = (time.monotonic() - started) / len(batch)
        for (method, _, _), message, outcome in zip(batch, messages, outcomes, strict=True):
            self._settle_committed(channel, method.delivery_tag, outcome)
            logger.info("queue=%s type=%s message_id=%s correlation_id=%s outcome=%s duration_ms=%.1f together=%d",
                        self.queue, message.type, message.message_id, message.correlation_id, outcome,
                        seconds * 1000, len(batch))
            message_observed(queue=self.queue, outcome=outcome, seconds=seconds)

    def _settle_committed(self, channel, delivery_tag: int, outcome: str) -> None:
        """A delivery whose transaction committed (handled, or a duplicate): ack it and count it."""
        self._ack_after_commit(channel, delivery_tag)
        if outcome == DUPLICATE:
            self.stats.duplicates += 1
        else:
            self.stats.handled += 1

    # -- acks ----------------------------------------------------------------------------
    # A handled message's transaction has committed, so its ack may wait a little: up to
    # ack_batch of them go as one basic.ack(multiple=True). A crash before that ack only
    # redelivers messages whose processed records make them change nothing.
    def _ack_after_commit(self, channel, delivery_tag: int) -> None:
        self._ack_pending_tag = delivery_tag
        self._ack_pending += 1
        if self._ack_pending >= self.ack_batch:
            self._acks_flush(channel)

    def _acks_flush(self, channel) -> None:
        if self._ack_pending_tag is not None:
            channel.basic_ack(self._ack_pending_tag, multiple=True)
        self._ack_pending_tag, self._ack_pending = None, 0

    def _attempt_of(self, properties) -> int:
        headers = getattr(properties, "headers", None) or {}
        attempt = headers.get("x-retry-attempt", 0)
        return attempt if isinstance(attempt, int) and attempt >= 0 else 0

    def _retry_or_park(self, channel, method, properties, body: bytes, exc: Exception) -> str:
        self._acks_flush(channel)  # settle earlier deliveries before this one is settled on its own
        attempt = self._attempt_of(properties) + 1
        delays = topology.retry_delays()
        if attempt > len(delays):
            return self._park(channel, method, properties, body, DeadLetter.Reason.RETRIES_EXHAUSTED, exc,
                              attempts=attempt)
        logger.warning("queue=%s message_id=%s attempt %d failed: %r; retrying in %ss",
                       self.queue, getattr(properties, "message_id", "?"), attempt, exc, delays[attempt - 1])
        headers = dict(getattr(properties, "headers", None) or {})
        headers["x-retry-attempt"] = attempt
        headers["x-last-error"] = repr(exc)[:500]
        retry_properties = message_properties_build(
            message_id=properties.message_id, correlation_id=properties.correlation_id, type=properties.type,
            timestamp=properties.timestamp, headers=headers, content_type=properties.content_type)
        try:
            # Confirmed publish to the delay queue, then ack the original: the message is
            # never in neither place (at worst in both, which the processed record absorbs).
            channel.basic_publish(
                exchange="",
                routing_key=topology.retry_queue(self.queue, attempt),
                body=body,
                properties=retry_properties,
                mandatory=True,
            )
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError):
            channel.basic_nack(method.delivery_tag, requeue=True)
            return RETRY
        channel.basic_ack(method.delivery_tag)
        self.stats.retried += 1
        return RETRY

    def _park(self, channel, method, properties, body: bytes, reason: str, exc: Exception, *, attempts: int = 1) -> str:
        self._acks_flush(channel)
        error = f"{type(exc).__name__}: {exc}"
        try:
            close_old_connections()
            dead_letter_record(
                queue=self.queue, properties=properties, body=body, reason=reason, error=error, attempts=attempts
            )
        except Exception:  # the database itself may be what failed
            logger.exception("queue=%s could not record dead letter; rejecting to %s",
                             self.queue, topology.dead_letter_queue(self.queue))
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag)
        logger.error("queue=%s message_id=%s parked (%s): %s",
                     self.queue, getattr(properties, "message_id", "?"), reason, error)
        self.stats.parked += 1
        return PARKED


class Worker:
    """A worker process: consumes one or more queues on one broker connection, a channel per
    queue (its own prefetch and acks), until stopped (SIGTERM/SIGINT) or a limit is reached.

    The deliveries each channel holds are handled in turn, a batch of one queue at a time, so no
    queue waits behind another's backlog for longer than one batch. Whatever was received but
    not handled when it stops goes back to its queue (unacknowledged).
    """

    # How long an idle worker waits on the broker before it looks up again (heartbeat, stop, idle exit).
    IDLE_WAIT_SECONDS = 0.25

    def __init__(self, queue_workers: list[QueueWorker], *, install_signal_handlers: bool = True) -> None:
        if len({q.queue for q in queue_workers}) != len(queue_workers):
            raise ValueError("a queue is named twice")
        self.queue_workers = queue_workers
        self._stopping = False
        self._install_signal_handlers = install_signal_handlers

    def stop(self, *_: Any) -> None:
        self._stopping = True

    def run(self, *, max_messages: int | None = None, idle_exit_seconds: float | None = None) -> None:
        if self._install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        backoff = 0.5
        while not self._stopping:
            self._beat()
            try:
                self._consume(max_messages=max_messages, idle_exit_seconds=idle_exit_seconds)
                break
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, ConnectionError) as exc:
                if self._stopping:
                    break
                logger.warning("queues=%s broker connection lost (%s); reconnecting in %.1fs",
                               ",".join(self._names()), exc, backoff)
                self._sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            except DatabaseAway as exc:
                logger.warning("queues=%s database unavailable (%s); deliveries handed back, consuming again "
                               "once it answers", ",".join(self._names()), exc.__cause__)
                self._database_wait()
        for queue_worker in self.queue_workers:
            queue_worker.heartbeat.stopped()

    def _names(self) -> list[str]:
        return [q.queue for q in self.queue_workers]

    def _beat(self) -> None:
        for queue_worker in self.queue_workers:
            queue_worker.heartbeat.beat()  # at most every WORKER_HEARTBEAT_SECONDS

    def _database_wait(self) -> None:
        backoff = 0.5
        while not self._stopping and not database_answers():
            self._sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _consume(self, *, max_messages: int | None, idle_exit_seconds: float | None) -> None:
        connection = broker.connect()
        received: dict[str, list[Delivery]] = {q.queue: [] for q in self.queue_workers}
        try:
            channels = self._channels_open(connection, received)
            self._deliveries_handle(connection, channels, received, max_messages=max_messages,
                                    idle_exit_seconds=idle_exit_seconds)
            # Ack what was handled; what was received but not handled goes back when the channels close.
            self._acks_flush(channels)
            for channel in channels.values():
                channel.close()
        finally:
            if connection.is_open:
                connection.close()
            close_old_connections()

    def _channels_open(self, connection, received: dict[str, list[Delivery]]) -> dict[str, Any]:
        """A channel per queue (the first declares the topology), each delivery appended to its queue's list."""
        channels = {}
        for queue_worker in self.queue_workers:
            channel = channels[queue_worker.queue] = connection.channel()
            if len(channels) == 1:
                topology.declare(channel)
            channel.confirm_delivery()  # retries are re-published and must be confirmed before the ack
            channel.basic_qos(prefetch_count=queue_worker.prefetch)
            channel.basic_consume(queue_worker.queue, on_message_callback=(
                lambda _channel, method, properties, body, into=received[queue_worker.queue]:
                    into.append((method, properties, body))))
            logger.info("queue=%s consumer=%s started (prefetch %d)",
                        queue_worker.queue, queue_worker.route.consumer, queue_worker.prefetch)
        return channels

    def _deliveries_handle(self, connection, channels: dict[str, Any], received: dict[str, list[Delivery]], *,
                           max_messages: int | None, idle_exit_seconds: float | None) -> None:
        """Receive and handle until stopped, ``max_messages`` handled, or idle for ``idle_exit_seconds``."""
        idle_since = time.monotonic()
        seen = 0
        while not self._stopping and (max_messages is None or seen < max_messages):
            self._beat()
            waiting = any(received.values())
            connection.process_data_events(time_limit=0 if waiting else self.IDLE_WAIT_SECONDS)
            if not any(received.values()):
                self._acks_flush(channels)  # idle: nothing more is coming right now
                if idle_exit_seconds is not None and time.monotonic() - idle_since >= idle_exit_seconds:
                    return
                continue
            seen += self._batches_handle(channels, received,
                                         room=None if max_messages is None else max_messages - seen)
            idle_since = time.monotonic()

    def _batches_handle(self, channels: dict[str, Any], received: dict[str, list[Delivery]], *,
                        room: int | None) -> int:
        """A batch of each queue in turn, at most ``room`` deliveries in all. Returns how many."""
        handled = 0
        for queue_worker in self.queue_workers:
            deliveries = received[queue_worker.queue]
            if not deliveries or self._stopping:
                continue
            limit = queue_worker.transaction_batch
            if room is not None:
                limit = min(limit, room - handled)
                if limit <= 0:
                    break
            batch, deliveries[:] = deliveries[:limit], deliveries[limit:]
            try:
                queue_worker.handle(channels[queue_worker.queue], batch)
            except DatabaseAway:
                self._acks_flush(channels)  # what committed is acked; the rest goes back
                raise
            handled += len(batch)
        return handled

    def _acks_flush(self, channels: dict) -> None:
        for queue_worker in self.queue_workers:
            queue_worker._acks_flush(channels[queue_worker.queue])

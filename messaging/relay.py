"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms.

A row is marked published only after the broker confirmed it (and, thanks to ``mandatory``,
routed it to a queue). The relay leases the rows that are due (``messaging.lease``), a batch
at a time, publishes them on one channel with up to ``window`` unconfirmed messages in flight
(``messaging.publisher``) and marks the confirmed ones in one statement. On PostgreSQL the
lease's row locks are held, in one transaction, until the batch is marked, so several relays
can run side by side without sending a row twice; if a relay dies mid-batch its locks vanish
with its connection and another relay (or its restart) sends the rows again -- consumers
absorb such duplicates by message id.

Inserting outbox rows fires ``NOTIFY outbox`` (a trigger; delivered on commit, once per
transaction) and an idle relay ``LISTEN``s, so a new row is picked up at once; a slow poll is
the fallback, and an idle relay also wakes when the next timer is due. SQLite has neither
NOTIFY nor row locks: there the relay polls, and publishes a batch outside any transaction
(a write transaction would lock every other writer out meanwhile), marking it afterwards.

The relay's connection prepares no statement (``_plan_afresh``): the outbox it reads goes from
empty to a backlog or a hundred thousand timers, and a plan made while it was empty, kept by a
prepared statement, reads all of it on every lease.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import pika
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from messaging import broker, topology, tracing
from messaging.envelope import message_properties_build
from messaging.faults import fault_point
from messaging.heartbeats import Heartbeat
from messaging.lease import PendingRow, outbox_lease, outbox_mark_published, outbox_next_due, outbox_put_off
from messaging.models import WorkerHeartbeat
from messaging.outbox import OUTBOX_NOTIFY_CHANNEL
from messaging.publisher import BatchResult, ConfirmingPublisher, Outgoing
from messaging.tracing import PUBLISHED_AT_MS, TRACEPARENT

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger("messaging.relay")

UNROUTABLE_RETRY_SECONDS = 30


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    batches: int = 0


def message_properties(row: PendingRow) -> pika.BasicProperties:
    # message_id, correlation_id (the order) and type are the contract's; the headers say what
    # caused the message, who wrote it, its trace (W3C traceparent) and when it was handed over.
    headers = {"causation_id": row.causation_id, "producer": row.producer,
               PUBLISHED_AT_MS: int(time.time() * 1000)}
    if row.traceparent:
        headers[TRACEPARENT] = row.traceparent
    return message_properties_build(message_id=row.message_id, correlation_id=row.correlation_id, type=row.type,
                                    timestamp=row.created, headers=headers)


class OutboxWakeup:
    """LISTEN for outbox commits on a connection of its own (PostgreSQL); plain sleep elsewhere."""

    def __init__(self) -> None:
        self._conn: psycopg.Connection[Any] | None = None

    def _listen(self):
        if self._conn is None and connection.vendor == "postgresql":
            import psycopg

            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            self._conn = psycopg.connect(**params, autocommit=True)
            self._conn.execute(f"LISTEN {OUTBOX_NOTIFY_CHANNEL}")
        return self._conn

    def arm(self) -> None:
        """LISTEN (once) and forget the commits notified so far: the lease that follows sees them.

        A notification is delivered only once its transaction is visible to new snapshots, so
        what is consumed here is in the next lease; every later commit wakes the next ``wait``.
        """
        try:
            conn = self._listen()
            if conn is not None:
                for _ in conn.notifies(timeout=0):
                    pass
        except Exception as exc:  # noqa: BLE001 - fall back to polling; the database may be restarting
            logger.warning("cannot LISTEN for outbox commits (%r); polling", exc)
            self.close()

    def wait(self, *, poll_seconds: float, listen_fallback_seconds: float, stopping,
             due_in: float | None = None) -> None:
        """Return when a writer committed outbox rows, when the next timer is due (``due_in``
        seconds from now), after the fallback poll, or when stopping."""
        conn = None
        try:
            conn = self._listen()
        except Exception as exc:  # noqa: BLE001 - fall back to polling; the database may be restarting
            logger.warning("cannot LISTEN for outbox commits (%r); polling", exc)
            self.close()
        seconds = poll_seconds if conn is None else listen_fallback_seconds
        if due_in is not None:
            seconds = min(seconds, max(due_in, 0.0))
        deadline = time.monotonic() + seconds
        while not stopping() and time.monotonic() < deadline:
            step = min(0.25, deadline - time.monotonic())
            if step <= 0:
                return
            if conn is None:
                time.sleep(max(step, 0))
                continue
            try:
                ready, _, _ = select.select([conn.fileno()], [], [], max(step, 0))
                if ready and list(conn.notifies(timeout=0)):
                    return
            except Exception as exc:  # noqa: BLE001
                logger.warning("LISTEN connection lost (%r); polling", exc)
                self.close()
                conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


class OutboxRelay:
    def __init__(self, *, batch_size: int | None = None, poll_seconds: float | None = None,
                 window: int | None = None, install_signal_handlers: bool = True) -> None:
        self.batch_size = batch_size or settings.MESSAGING["RELAY_BATCH_SIZE"]
        self.poll_seconds = settings.MESSAGING["RELAY_POLL_SECONDS"] if poll_seconds is None else poll_seconds
        self.window = window or settings.MESSAGING["RELAY_WINDOW"]
        self.stats = RelayStats()
        self._stopping = False
        self._install_signal_handlers = install_signal_handlers
        self._publisher: ConfirmingPublisher | None = None
        self._wakeup = OutboxWakeup()
        self.heartbeat = Heartbeat(kind=WorkerHeartbeat.Kind.RELAY)

    def stop(self, *_: Any) -> None:
        self._stopping = True

    # -- broker --------------------------------------------------------------------------
    def _ensure_publisher(self) -> ConfirmingPublisher:
        if self._publisher is not None and self._publisher.is_open:
            return self._publisher
        self._close_publisher()
        setup = broker.connect()
        try:
            topology.declare(setup.channel())
        finally:
            setup.close()
        publisher = ConfirmingPublisher(broker.node_parameters(), window=self.window)
        publisher.open()
        self._publisher = publisher
        return publisher

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self._publisher = None

    # -- work ----------------------------------------------------------------------------
    def _plan_afresh(self) -> None:
        """Turn off psycopg's prepared statements on this thread's connection (the settings turn
        them on: a statement run twice is prepared, and keeps the plan made then).

        The relay's first leases find the outbox empty, and a lease planned then sorts the
        whole table instead of reading the due index: with 100,000 timers waiting a lease and
        the next-due lookup took 254 ms on the prepared plan, 0.9 ms planned afresh.
        """
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            connection.connection.prepare_threshold = None

    def _lease_transaction(self):
        """PostgreSQL: one transaction from the lease to the mark, holding the rows' locks while
        they are published. SQLite: none (see the module's docstring)."""
        if connection.vendor == "postgresql":
            return transaction.atomic()
        return contextlib.nullcontext()

    def drain(self) -> None:
        """Publish batch after batch until one comes back short: nothing more is due."""
        self._plan_afresh()
        self._wakeup.arm()
        while not self._stopping and self.drain_batch() == self.batch_size:
            pass

    def drain_batch(self) -> int:
        """Lease, publish and mark one batch; returns how many rows it had.

        What the broker confirmed is marked even when the connection broke mid-batch; the
        error is raised once that mark committed.
        """
        publisher = self._ensure_publisher()
        with self._lease_transaction():
            rows = outbox_lease(limit=self.batch_size)
            result = self._publish(publisher, rows)
            published, failed = self._record(result, rows)
        if tracing.exporting and result.confirmed:  # each message's time in the outbox, as a span of its trace
            confirmed, now = set(result.confirmed), time.time()
            for row in rows:
                if row.id in confirmed:
                    tracing.outbox_waited(traceparent=row.traceparent, type=row.type, written_at=row.written_at,
                                          published_at=now)
        self.stats.published += published
        self.stats.failed += failed
        if rows:
            self.stats.batches += 1
        if result.error is not None:
            raise result.error
        return len(rows)

    def _publish(self, publisher: ConfirmingPublisher, rows: list[PendingRow]) -> BatchResult:
        if not rows:
            return BatchResult()
        result = publisher.publish_batch(
            Outgoing(key=row.id, exchange=row.exchange, routing_key=row.routing_key, body=row.body,
                     properties=message_properties(row))
            for row in rows
        )
        fault_point("relay.after_publish")  # confirmed by the broker, not yet marked
        return result

    def _record(self, result: BatchResult, rows: list[PendingRow]) -> tuple[int, int]:
        """Mark what the broker confirmed; put what it refused off for a while. Returns (published, failed)."""
        now = timezone.now()
        with transaction.atomic(savepoint=False):  # PostgreSQL: the lease's transaction
            if result.confirmed:
                confirmed = set(result.confirmed)
                written = [row.written_at for row in rows if row.id in confirmed and row.written_at]
                outbox_mark_published(cast("list[int]", result.confirmed), when=now, written=written)  # keyed by row id
            for row_id, error in result.failed.items():
                outbox_put_off(cast(int, row_id), error=error, until=now + timedelta(seconds=UNROUTABLE_RETRY_SECONDS))
                logger.error("outbox row %s not published: %s (retry in %ss)", row_id, error, UNROUTABLE_RETRY_SECONDS)
        return len(result.confirmed), len(result.failed)

    def next_due_in(self) -> float | None:
        """Seconds until the first waiting row is due (0 or less: due now); None when none waits."""
        due = outbox_next_due()
        return None if due is None else (due - timezone.now()).total_seconds()

    def run(self, *, once: bool = False) -> RelayStats:
        if self._install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        backoff = 0.5
        try:
            while not self._stopping:
                self.heartbeat.beat()  # at most every WORKER_HEARTBEAT_SECONDS
                published = self.stats.published
                try:
                    self.drain()
                    backoff = 0.5
                except (pika.exceptions.AMQPError, ConnectionError, OSError) as exc:
                    self._close_publisher()
                    logger.warning("broker unavailable (%r); outbox rows wait; retrying in %.1fs", exc, backoff)
                    if once:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except DatabaseError as exc:
                    logger.warning("database unavailable (%r); retrying in %.1fs", exc, backoff)
                    self._wakeup.close()
                    connection.close()  # opened afresh by the next lease
                    if once:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                self.heartbeat.counted(self.stats.published - published)
                if once:
                    break
                # Commits notified while draining are queued on the LISTEN connection: none is missed.
                try:
                    due_in = self.next_due_in()
                except DatabaseError:
                    due_in = None  # the next drain finds the database away and backs off
                self._wakeup.wait(poll_seconds=self.poll_seconds,
                                  listen_fallback_seconds=settings.MESSAGING["RELAY_LISTEN_FALLBACK_SECONDS"],
                                  stopping=lambda: self._stopping, due_in=due_in)
            self.heartbeat.stopped()
        finally:
            self._close_publisher()
            self._wakeup.close()
            if threading.current_thread() is not threading.main_thread():
                # Django's connections are per thread: the one this relay leased on would outlive its thread.
                connection.close()
        return self.stats

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

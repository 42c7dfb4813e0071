"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms.

A row is marked published only after the broker confirmed it (and, thanks to ``mandatory``,
routed it to a queue). The relay leases the rows that are due (``messaging.lease``), a batch at
a time, publishes them on one channel with up to ``window`` unconfirmed messages in flight
(``messaging.publisher``) and marks the confirmed ones in one statement. On PostgreSQL a
lease's row locks are held, in one transaction, until its batch is marked, so several relays
can run side by side without sending a row twice; if a relay dies mid-batch its locks vanish
with its connections and another relay (or its restart) sends the rows again -- consumers
absorb such duplicates by message id.

Lanes, on a backlog (PostgreSQL): the first batch after a wake-up is leased on the relay's own
thread. When it comes back full, the batches after it are leased on two lanes, threads with a
database connection of their own that take turns: the next batch is leased while the broker
works on this one, and this one is marked while the broker works on the next, so the channel
does not idle waiting for the database (20% more messages a second on a backlog,
docs/benchmarks.md). A batch is published only after the one before it was confirmed, so rows
still leave in due order.

Inserting outbox rows fires ``NOTIFY outbox`` (a trigger; delivered on commit, once per
transaction) and an idle relay ``LISTEN``s, so a new row is picked up at once; a slow poll is
the fallback, and an idle relay also wakes when the next timer is due. SQLite has neither
NOTIFY nor row locks: there the relay polls, leases one batch at a time and publishes it
outside any transaction (a write transaction would lock every other writer out meanwhile),
marking it afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pika
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from messaging import broker, topology
from messaging.faults import fault_point
from messaging.lease import PendingRow, outbox_lease, outbox_mark_published, outbox_next_due, outbox_put_off
from messaging.outbox import OUTBOX_NOTIFY_CHANNEL
from messaging.publisher import BatchResult, ConfirmingPublisher, Outgoing

logger = logging.getLogger("messaging.relay")

UNROUTABLE_RETRY_SECONDS = 30


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    batches: int = 0


def message_properties(row: PendingRow) -> pika.BasicProperties:
    # message_id, correlation_id (the order) and type are the contract's; the two headers say
    # what caused the message and who wrote it.
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=row.message_id,
        correlation_id=row.correlation_id,
        type=row.type,
        timestamp=row.created,
        headers={"causation_id": row.causation_id, "producer": row.producer},
    )


class OutboxWakeup:
    """LISTEN for outbox commits on a connection of its own (PostgreSQL); plain sleep elsewhere."""

    def __init__(self) -> None:
        self._conn = None

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
                if ready:
                    notified = list(conn.notifies(timeout=0))
                    if notified:
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


class Lease:
    """One batch of outbox rows, held by a lane from the lease until the broker's verdict is recorded."""

    def __init__(self, relay: OutboxRelay) -> None:
        self._relay = relay
        self._rows: Future[list[PendingRow]] = Future()
        self._verdict: Future[BatchResult] = Future()
        self.recorded: Future[tuple[int, int]] = Future()  # (published, failed)

    def rows(self) -> list[PendingRow]:
        """The leased rows, once the lane read them; raises the lane's database error."""
        return self._rows.result()

    def settle(self, result: BatchResult) -> None:
        """Hand the lane the broker's verdict: it records it and commits, which ends the lease."""
        if not self._verdict.done():
            self._verdict.set_result(result)

    def release(self) -> None:
        """End the lease with nothing recorded: its rows go out again with a later batch."""
        self.settle(BatchResult())

    def hold(self) -> None:
        """In the lane's thread: lease, wait for the verdict and record it, in one transaction."""
        counts = (0, 0)
        try:
            with self._relay._lease():
                rows = self._relay._pending()
                self._rows.set_result(rows)
                if rows:
                    counts = self._relay._record(self._verdict.result())
        except Exception as exc:  # noqa: BLE001 - handed to the relay's thread, which backs off
            if not self._rows.done():
                self._rows.set_exception(exc)  # raised once, by rows(); nothing was recorded
            else:
                self.recorded.set_exception(exc)
                return
        self.recorded.set_result(counts)


class LeaseLane:
    """A thread with a database connection of its own (Django's are per thread), holding one lease at a time."""

    def __init__(self, name: str) -> None:
        self._leases: queue.SimpleQueue[Lease | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def hold(self, lease: Lease) -> None:
        """Queue a lease; it starts once the lane's previous lease ended."""
        self._leases.put(lease)

    def close(self) -> None:
        """Stop the thread (every lease it holds must be settled) and close its connection."""
        self._leases.put(None)
        self._thread.join()

    def _serve(self) -> None:
        try:
            while (lease := self._leases.get()) is not None:
                lease.hold()
        finally:
            with contextlib.suppress(DatabaseError):
                connection.close()


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
        self._lanes: list[LeaseLane] = []
        self._turn = 0
        self._leases: deque[Lease] = deque()  # leased, not yet counted in stats

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
        publisher = ConfirmingPublisher(broker.connection_parameters(), window=self.window)
        publisher.open()
        self._publisher = publisher
        return publisher

    def _close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self._publisher = None

    def _close(self) -> None:
        """Close the broker connection and the lanes' database connections (reopened when next needed)."""
        self._close_publisher()
        self._close_lanes()

    # -- database ------------------------------------------------------------------------
    def _lease(self):
        """PostgreSQL: one transaction from the lease to the mark, holding the rows' locks while
        they are published. SQLite: none (see the module's docstring)."""
        if connection.vendor == "postgresql":
            return transaction.atomic()
        return contextlib.nullcontext()

    def _pending(self) -> list[PendingRow]:
        return outbox_lease(limit=self.batch_size)

    def next_due_in(self) -> float | None:
        """Seconds until the first waiting row is due (0 or less: due now); None when none waits."""
        due = outbox_next_due()
        return None if due is None else (due - timezone.now()).total_seconds()

    def _record(self, result: BatchResult) -> tuple[int, int]:
        """Mark what the broker confirmed; put what it refused off for a while. Returns (published, failed).

        On PostgreSQL this runs inside the lease's transaction (no savepoint of its own).
        """
        now = timezone.now()
        with transaction.atomic(savepoint=False):
            if result.confirmed:
                outbox_mark_published(result.confirmed, when=now)
            for row_id, error in result.failed.items():
                outbox_put_off(row_id, error=error, until=now + timedelta(seconds=UNROUTABLE_RETRY_SECONDS))
                logger.error("outbox row %s not published: %s (retry in %ss)", row_id, error, UNROUTABLE_RETRY_SECONDS)
        return len(result.confirmed), len(result.failed)

    def _lease_batch(self) -> Lease:
        """Start leasing the next batch on the next lane (they take turns)."""
        if not self._lanes:
            count = 2 if connection.vendor == "postgresql" else 1
            self._lanes = [LeaseLane(f"outbox-lane-{i}") for i in range(count)]
        lease = Lease(self)
        self._lanes[self._turn % len(self._lanes)].hold(lease)
        self._turn += 1
        self._leases.append(lease)
        return lease

    def _count_recorded(self, *, wait: bool) -> None:
        """Add what the lanes recorded to the stats (all of it, waiting, when ``wait``); raises a lane's error."""
        while self._leases and (wait or self._leases[0].recorded.done()):
            published, failed = self._leases.popleft().recorded.result()
            self.stats.published += published
            self.stats.failed += failed

    def _close_lanes(self) -> None:
        for lease in self._leases:
            lease.release()  # a lane only stops after its lease ended
        self._leases.clear()
        for lane in self._lanes:
            lane.close()
        self._lanes = []

    # -- work ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Publish batch after batch until one comes back short: nothing more is waiting."""
        self._wakeup.arm()
        lease = self._drain_first_batch()
        if lease is None:
            return
        while lease is not None:
            if self._stopping:
                lease.release()
                self._count_recorded(wait=True)
                return
            lease = self.drain_batch(lease)

    def _drain_first_batch(self) -> Lease | None:
        """The first batch after a wake-up: leased, published and recorded on this thread.

        Rows mostly trickle in a commit or two at a time. Handing such a batch to a lane and
        back (four thread switches) cost more CPU than the batch itself, so only a batch that
        comes back full leases the next one on a lane, which then goes on as ``drain_batch``.
        Returns that next batch's lease, or None after a short batch.
        """
        following = None
        publisher = self._ensure_publisher()
        try:
            with self._lease():
                rows = self._pending()
                if len(rows) == self.batch_size and connection.vendor == "postgresql" and not self._stopping:
                    following = self._lease_batch()
                result = self._publish(publisher, rows)
                published, failed = self._record(result)
        except BaseException:
            if following is not None:
                following.release()
            raise
        self.stats.published += published
        self.stats.failed += failed
        if rows:
            self.stats.batches += 1
        self._raise_broker_error(result, following)
        return following

    def drain_batch(self, lease: Lease | None = None) -> Lease | None:
        """Publish one batch (``lease``, or one leased now); returns the next batch's lease when this one was full.

        The next batch is leased on the other lane while the broker works on this one. What
        the broker confirmed is recorded even when the connection breaks mid-batch; the error
        is raised after that record committed. After a short batch every record committed.
        """
        following = None
        try:
            publisher = self._ensure_publisher()
            lease = lease or self._lease_batch()
            rows = lease.rows()
            if len(rows) == self.batch_size and len(self._lanes) > 1 and not self._stopping:
                following = self._lease_batch()
            result = self._publish(publisher, rows)
        except BaseException:
            for held in (lease, following):
                if held is not None:
                    held.release()
            raise
        lease.settle(result)
        if rows:
            self.stats.batches += 1
        self._raise_broker_error(result, following)
        self._count_recorded(wait=following is None)
        return following

    def _raise_broker_error(self, result: BatchResult, following: Lease | None) -> None:
        """After a batch the connection broke in: free the next lease, wait for every record, raise."""
        if result.error is not None:
            if following is not None:
                following.release()
            self._count_recorded(wait=True)
            raise result.error

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

    def run(self, *, once: bool = False) -> RelayStats:
        if self._install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        backoff = 0.5
        try:
            while not self._stopping:
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
                    self._close_lanes()  # their connections are opened afresh
                    self._wakeup.close()
                    connection.close()  # this thread's, which leases the first batch of a drain
                    if once:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
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
        finally:
            self._close()
            self._wakeup.close()
            if threading.current_thread() is not threading.main_thread():
                # Django's connections are per thread: the one this relay leased on would outlive its thread.
                connection.close()
        return self.stats

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

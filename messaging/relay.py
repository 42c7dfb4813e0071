"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms.

A row is marked published only after the broker confirmed it (and, thanks to
``mandatory``, routed it to a queue). Rows go out in id order on one channel, a batch at a
time, with up to ``window`` unconfirmed messages in flight (``messaging.publisher``); the
confirmed rows of a batch are marked in one statement.

The first batch after a wake-up is leased on the relay's own thread; when it comes back full
(a backlog), the batches after it are leased on lanes: threads with a database connection of
their own. The rows waiting are those listed in ``OutboxPending`` (the database keeps that list
in step with ``published_at``, so a mark is a HOT update that touches no index). On PostgreSQL
the lease locks their entries there (``FOR UPDATE SKIP LOCKED``) in a transaction
held open until the batch's rows are marked, so several relays can run side by side without
sending a row twice; if a relay dies mid-batch its locks vanish with its connections and
another relay (or its restart) sends the rows again -- consumers absorb such duplicates by
message id. On a backlog two lanes take turns: the next batch is leased while the broker works
on this one, and this one is marked while the broker works on the next, so the channel does
not idle waiting for the database. A batch is published only after the one before it was
confirmed, so rows still leave in id order.

Inserting outbox rows fires ``NOTIFY outbox`` (a trigger; delivered on commit, once per
transaction) and an idle relay ``LISTEN``s, so a new row is picked up at once; a slow poll is
the fallback. SQLite has neither, nor row locks: there the relay polls and leases one batch at
a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import queue
import select
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pika
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import BigIntegerField, BooleanField, Exists, F, Func, OuterRef, Q, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Now
from django.utils import timezone

from config.rows import statement_cursor
from messaging import broker, topology
from messaging.faults import fault_point
from messaging.models import OutboxMessage, OutboxPending
from messaging.outbox import OUTBOX_NOTIFY_CHANNEL
from messaging.publisher import BatchResult, ConfirmingPublisher, Outgoing

logger = logging.getLogger("messaging.relay")

UNROUTABLE_RETRY_SECONDS = 30


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    batches: int = 0


@dataclass(frozen=True)
class PendingRow:
    """What the relay needs of an outbox row (read as plain values: no model, no JSON round trip)."""

    id: int
    message_id: str
    exchange: str
    routing_key: str
    type: str
    correlation_id: str
    causation_id: str
    producer: str
    created: int  # seconds since the epoch (AMQP's timestamp)
    body: bytes


PENDING_FIELDS = ("id", "message_id", "exchange", "queue", "type", "correlation_id", "causation_id", "producer",
                  "created", "payload_text")


class EpochSeconds(Func):
    """A timestamp as whole seconds since the epoch, computed by the database.

    Loading a timezone-aware datetime per row (only to take its ``timestamp()``) was a third
    of the CPU time of a lease.
    """

    output_field = BigIntegerField()

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="floor(EXTRACT(EPOCH FROM %(expressions)s))::bigint",
                           **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection,
                           template="CAST((julianday(%(expressions)s) - 2440587.5) * 86400 AS INTEGER)",
                           **extra_context)


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


def _uuid_text(value: UUID | str) -> str:
    """A message id as text: PostgreSQL hands back a UUID, SQLite its 32 hex digits."""
    return str(value if isinstance(value, UUID) else UUID(value))


def _mark_published(ids: list[int], when: datetime) -> None:
    """One statement for the whole batch (on PostgreSQL a single array parameter, not an IN list).

    The array goes as one text literal: psycopg dumps a list of ints element by element in
    Python, which was a tenth of the relay's CPU time on small batches.

    Never a prepared statement: its generic plan is made from the table's statistics of the
    moment, and one made while the outbox was still empty (a new database, a truncated one)
    is a sequential scan, kept until the next ANALYZE: a run of the pipeline benchmark spent
    0.69 ms and 325 buffers per mark on it. Planned afresh for each batch, the planner sees
    how many ids there are and takes the primary key: 0.2 ms and 41 buffers in the same run.
    """
    if connection.vendor == "postgresql":
        _execute_unprepared(
            statement_cursor(),
            f"UPDATE {OutboxMessage._meta.db_table} SET published_at = %s WHERE id = ANY(%s::bigint[])",
            [when, "{" + ",".join(str(int(i)) for i in ids) + "}"],
        )
    else:
        for start in range(0, len(ids), 500):  # SQLite caps the number of parameters
            OutboxMessage.objects.filter(id__in=ids[start:start + 500]).update(published_at=when)


def _execute_unprepared(cursor, sql: str, params) -> None:
    """Run ``sql`` on PostgreSQL planned for this execution, never as a prepared statement.

    For the relay's statements on the outbox, whose size changes by orders of magnitude: a
    prepared statement's generic plan is made from the statistics of its moment and kept
    until the next ANALYZE (see ``_mark_published``). psycopg's errors come out as Django's,
    as from the cursor wrapper's own ``execute``.
    """
    with connection.wrap_database_errors:
        cursor.cursor.execute(sql, params, prepare=False)


def memory_give_back() -> None:
    """Hand the memory freed since the last call back to the operating system (glibc only).

    A backlog's batches (up to RELAY_BATCH_SIZE rows each, on up to three threads) are freed
    once sent, but glibc keeps the freed memory in each thread's arena for reuse, so an idle
    relay would go on holding what its largest backlog took. ``malloc_trim`` returns it.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to give back this way
        return None


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
        self._pending_sql: tuple[str, tuple] | None = None

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
        # PostgreSQL: hold the row locks while publishing (the lease). SQLite has no row
        # locks and a write transaction would lock out every other writer, so there the
        # rows are read without a transaction and marked in a short one afterwards (the
        # demo runs one relay).
        if connection.vendor == "postgresql":
            return transaction.atomic()
        return contextlib.nullcontext()

    def _pending(self) -> list[PendingRow]:
        # A cursor of its own, closed at once: a kept one would hold on to the whole batch's
        # result (up to RELAY_BATCH_SIZE payloads) until its next statement.
        sql, params = self._pending_query()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # a plan made while the outbox was small reads it whole (a test shows it)
                _execute_unprepared(cursor, sql, params)
            else:
                cursor.execute(sql, params)
            return [
                PendingRow(id=r[0], message_id=_uuid_text(r[1]), exchange=r[2], routing_key=r[3], type=r[4],
                           correlation_id=r[5], causation_id=r[6], producer=r[7], created=r[8],
                           body=r[9].encode("utf-8"))
                for r in cursor.fetchall()
            ]

    def _pending_query(self) -> tuple[str, tuple]:
        """The lease's SQL, built once: building it through the ORM for every lease cost more than running it.

        It reads the outbox rows listed in OutboxPending, oldest first. On PostgreSQL it locks
        those small rows (``FOR UPDATE SKIP LOCKED``), not the outbox's, and it is written so
        that the outbox is only ever read by its primary key: as a plain join, the planner
        took the pending table's statistics (it fills and empties all the time) for a large
        backlog and hash-joined it with the whole outbox, 1.4 ms and 330 buffers per lease in
        a run of the pipeline benchmark. No parameter changes (the time is the database's).
        """
        if self._pending_sql is None:
            # Due entries, in due order (an index range: entries not due yet are never read).
            waiting = OutboxPending.objects.filter(next_attempt_at__lte=Now()).order_by("next_attempt_at", "outbox_id")
            if connection.vendor == "postgresql":
                lease, params = (waiting.select_for_update(skip_locked=True).values_list("outbox_id")[: self.batch_size]
                                 .query.sql_with_params())
                table = connection.ops.quote_name(OutboxMessage._meta.db_table)
                listed = RawSQL(f'{table}."id" = ANY(ARRAY({lease}))', params, output_field=BooleanField())
            else:  # SQLite: no row locks, nor a planner to outwit
                listed = Exists(waiting.filter(outbox_id=OuterRef("id")))
            # The payload as the database's own JSON text: sent as it is, never parsed and re-encoded.
            qs = OutboxMessage.objects.filter(listed).annotate(
                payload_text=Cast("payload", output_field=TextField()), created=EpochSeconds("created_at"))
            qs = qs.order_by("id").values_list(*PENDING_FIELDS)[: self.batch_size]
            self._pending_sql = qs.query.sql_with_params()
        return self._pending_sql

    def next_due_in(self) -> float | None:
        """Seconds until the first waiting row is due (0 or less: due now); None when none waits.

        One lookup of the first entry of the pending list's (next_attempt_at, outbox_id)
        index: an idle relay costs the same with 100,000 timers due tomorrow as with none.
        """
        first = OutboxPending.objects.order_by("next_attempt_at", "outbox_id").values_list("next_attempt_at", flat=True)
        if connection.vendor == "postgresql":
            # Never prepared (see _mark_published): a generic plan made while the list was empty
            # reads and sorts all of it, 8-11 ms per call with 100,000 timers waiting.
            sql, params = first[:1].query.sql_with_params()
            with connection.cursor() as cursor:
                _execute_unprepared(cursor, sql, params)
                row = cursor.fetchone()
            due = row[0] if row else None
        else:
            due = first.first()
        if due is None:
            return None
        return (due - timezone.now()).total_seconds()

    def _record(self, result: BatchResult) -> tuple[int, int]:
        """Mark what the broker confirmed; put what it refused off for a while. Returns (published, failed).

        The outbox's triggers take the marked rows off OutboxPending and copy a refused row's
        ``next_attempt_at`` there. On PostgreSQL this runs inside the lease's transaction, so
        it opens no savepoint of its own.
        """
        now = timezone.now()
        with transaction.atomic(savepoint=False):
            if result.confirmed:
                _mark_published(result.confirmed, now)
            for row_id, error in result.failed.items():
                OutboxMessage.objects.filter(id=row_id).update(
                    attempts=F("attempts") + 1,
                    last_error=error,
                    next_attempt_at=now + timedelta(seconds=UNROUTABLE_RETRY_SECONDS),
                )
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
        try:
            while lease is not None:
                if self._stopping:
                    lease.release()
                    self._count_recorded(wait=True)
                    return
                lease = self.drain_batch(lease)
        finally:
            memory_give_back()  # after a backlog: what its batches took goes back to the system

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

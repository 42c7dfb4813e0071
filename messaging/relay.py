"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms.

A row is marked published only after the broker confirmed it (and, thanks to
``mandatory``, routed it to a queue). Rows go out in id order on one channel, a batch at a
time, with up to ``window`` unconfirmed messages in flight (``messaging.publisher``); the
confirmed rows of a batch are marked in one statement.

On PostgreSQL the rows of a batch are leased with ``SELECT ... FOR UPDATE SKIP LOCKED``
for as long as they are being published, so several relays can run side by side without
sending a row twice; if a relay dies mid-batch its locks vanish with its connection and
another relay (or its restart) sends the rows again -- consumers absorb such duplicates by
message id. Writers ``NOTIFY outbox`` in their transaction (delivered on commit) and an idle
relay ``LISTEN``s, so a new row is picked up at once; a slow poll is the fallback. SQLite
has neither: there the relay polls.
"""

from __future__ import annotations

import contextlib
import logging
import select
import signal
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pika
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from messaging import broker, topology
from messaging.faults import fault_point
from messaging.models import OutboxMessage
from messaging.outbox import OUTBOX_NOTIFY_CHANNEL
from messaging.publisher import ConfirmingPublisher, Outgoing

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
    created_at: datetime
    body: bytes


PENDING_FIELDS = ("id", "message_id", "exchange", "queue", "type", "correlation_id", "causation_id", "producer",
                  "created_at", "payload_text")


def message_properties(row: PendingRow) -> pika.BasicProperties:
    # message_id, correlation_id (the order) and type are the contract's; the two headers say
    # what caused the message and who wrote it.
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=row.message_id,
        correlation_id=row.correlation_id,
        type=row.type,
        timestamp=int(row.created_at.timestamp()),
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

    def wait(self, *, poll_seconds: float, listen_fallback_seconds: float, stopping) -> None:
        """Return when a writer committed outbox rows (or after the fallback poll), or when stopping."""
        conn = None
        try:
            conn = self._listen()
        except Exception as exc:  # noqa: BLE001 - fall back to polling; the database may be restarting
            logger.warning("cannot LISTEN for outbox commits (%r); polling", exc)
            self.close()
        seconds = poll_seconds if conn is None else listen_fallback_seconds
        deadline = time.monotonic() + seconds
        while not stopping() and time.monotonic() < deadline:
            step = min(0.25, deadline - time.monotonic())
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


def _mark_published(ids: list[int], when: datetime) -> None:
    """One statement for the whole batch (on PostgreSQL a single array parameter, not an IN list)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {OutboxMessage._meta.db_table} SET published_at = %s WHERE id = ANY(%s)",
                           [when, ids])
    else:
        for start in range(0, len(ids), 500):  # SQLite caps the number of parameters
            OutboxMessage.objects.filter(id__in=ids[start:start + 500]).update(published_at=when)


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

    def stop(self, *_: Any) -> None:
        self._stopping = True

    # -- broker --------------------------------------------------------------------------
    def _ensure_publisher(self) -> ConfirmingPublisher:
        if self._publisher is not None and self._publisher.is_open:
            return self._publisher
        self._close()
        setup = broker.connect()
        try:
            topology.declare(setup.channel())
        finally:
            setup.close()
        publisher = ConfirmingPublisher(broker.connection_parameters(), window=self.window)
        publisher.open()
        self._publisher = publisher
        return publisher

    def _close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
        self._publisher = None

    # -- work ----------------------------------------------------------------------------
    def _lease(self):
        # PostgreSQL: hold the row locks while publishing (the lease). SQLite has no row
        # locks and a write transaction would lock out every other writer, so there the
        # rows are read without a transaction and marked in a short one afterwards (the
        # demo runs one relay).
        if connection.vendor == "postgresql":
            return transaction.atomic()
        return contextlib.nullcontext()

    def _pending(self):
        now = timezone.now()
        qs = OutboxMessage.objects.filter(published_at__isnull=True).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        ).order_by("id")
        if connection.vendor == "postgresql":
            qs = qs.select_for_update(skip_locked=True)
        # The payload as the database's own JSON text: sent as it is, never parsed and re-encoded.
        qs = qs.annotate(payload_text=Cast("payload", output_field=TextField()))
        return [
            PendingRow(id=r[0], message_id=str(r[1]), exchange=r[2], routing_key=r[3], type=r[4], correlation_id=r[5],
                       causation_id=r[6], producer=r[7], created_at=r[8], body=r[9].encode("utf-8"))
            for r in qs.values_list(*PENDING_FIELDS)[: self.batch_size]
        ]

    def drain_batch(self) -> int:
        """Publish one batch; returns how many rows were published.

        What the broker confirmed is recorded even when the connection breaks mid-batch;
        the error is raised after that record committed.
        """
        publisher = self._ensure_publisher()
        with self._lease():
            rows = self._pending()
            if not rows:
                return 0
            result = publisher.publish_batch(
                Outgoing(key=row.id, exchange=row.exchange, routing_key=row.routing_key, body=row.body,
                         properties=message_properties(row))
                for row in rows
            )
            fault_point("relay.after_publish")  # confirmed by the broker, not yet marked
            self._record(result.confirmed, list(result.failed.items()))
        self.stats.batches += 1
        if result.error is not None:
            raise result.error
        return len(result.confirmed)

    def _record(self, published_ids: list[int], failures: list[tuple[int, str]]) -> None:
        now = timezone.now()
        with transaction.atomic():
            if published_ids:
                _mark_published(published_ids, now)
            for row_id, error in failures:
                OutboxMessage.objects.filter(id=row_id).update(
                    attempts=F("attempts") + 1,
                    last_error=error,
                    next_attempt_at=now + timedelta(seconds=UNROUTABLE_RETRY_SECONDS),
                )
                logger.error("outbox row %s not published: %s (retry in %ss)", row_id, error, UNROUTABLE_RETRY_SECONDS)
        self.stats.published += len(published_ids)
        self.stats.failed += len(failures)

    def run(self, *, once: bool = False) -> RelayStats:
        if self._install_signal_handlers:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        backoff = 0.5
        try:
            while not self._stopping:
                close_old_connections()
                try:
                    sent = self.drain_batch()
                    backoff = 0.5
                except (pika.exceptions.AMQPError, ConnectionError, OSError) as exc:
                    self._close()
                    logger.warning("broker unavailable (%r); outbox rows wait; retrying in %.1fs", exc, backoff)
                    if once:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except DatabaseError as exc:
                    logger.warning("database unavailable (%r); retrying in %.1fs", exc, backoff)
                    self._wakeup.close()
                    if once:
                        raise
                    self._sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if sent:
                    logger.debug("relayed %d outbox messages", sent)
                    continue
                if once:
                    break
                self._wakeup.wait(poll_seconds=self.poll_seconds,
                                  listen_fallback_seconds=settings.MESSAGING["RELAY_LISTEN_FALLBACK_SECONDS"],
                                  stopping=lambda: self._stopping)
        finally:
            self._close()
            self._wakeup.close()
            close_old_connections()
        return self.stats

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

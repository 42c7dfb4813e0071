"""The outbox relay: committed outbox rows -> RabbitMQ, with publisher confirms.

A row is marked published only after the broker confirmed it (and, thanks to
``mandatory``, routed it to a queue). On PostgreSQL the rows of a batch are leased with
``SELECT ... FOR UPDATE SKIP LOCKED`` for as long as they are being published, so several
relays can run side by side without sending a row twice; if a relay dies mid-batch its
locks vanish with its connection and another relay (or its restart) sends the rows again --
consumers absorb such duplicates by message id.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pika
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from messaging import broker, topology
from messaging.faults import fault_point
from messaging.models import OutboxMessage

logger = logging.getLogger("messaging.relay")

UNROUTABLE_RETRY_SECONDS = 30


@dataclass
class RelayStats:
    published: int = 0
    failed: int = 0
    batches: int = 0


def message_properties(row: OutboxMessage) -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        message_id=str(row.message_id),
        correlation_id=row.correlation_id,
        type=row.type,
        timestamp=int(row.created_at.timestamp()),
        headers={
            "type": row.type,
            "causation_id": row.causation_id,
            "producer": row.producer,
            "outbox_id": row.id,
            "created_at": row.created_at.isoformat(),
        },
    )


def message_body(row: OutboxMessage) -> bytes:
    return json.dumps(row.payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class OutboxRelay:
    def __init__(self, *, batch_size: int | None = None, poll_seconds: float | None = None,
                 install_signal_handlers: bool = True) -> None:
        self.batch_size = batch_size or settings.MESSAGING["RELAY_BATCH_SIZE"]
        self.poll_seconds = settings.MESSAGING["RELAY_POLL_SECONDS"] if poll_seconds is None else poll_seconds
        self.stats = RelayStats()
        self._stopping = False
        self._install_signal_handlers = install_signal_handlers
        self._connection: pika.BlockingConnection | None = None
        self._channel = None

    def stop(self, *_: Any) -> None:
        self._stopping = True

    # -- broker --------------------------------------------------------------------------
    def _ensure_channel(self):
        if self._channel is not None and self._channel.is_open and self._connection.is_open:
            return self._channel
        self._close()
        self._connection = broker.connect()
        channel = self._connection.channel()
        topology.declare(channel)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def _close(self) -> None:
        with contextlib.suppress(Exception):
            if self._connection is not None and self._connection.is_open:
                self._connection.close()
        self._connection = None
        self._channel = None

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
        return qs[: self.batch_size]

    def drain_batch(self) -> int:
        """Publish one batch; returns how many rows were published."""
        channel = self._ensure_channel()
        published_ids: list[int] = []
        failures: list[tuple[int, str]] = []
        with self._lease():
            rows = list(self._pending())
            if not rows:
                return 0
            try:
                for row in rows:
                    try:
                        channel.basic_publish(
                            exchange=row.exchange,
                            routing_key=row.queue,
                            body=message_body(row),
                            properties=message_properties(row),
                            mandatory=True,
                        )
                    except pika.exceptions.UnroutableError:
                        failures.append((row.id, f"unroutable: no queue bound for routing key {row.queue!r}"))
                    except pika.exceptions.NackError:
                        failures.append((row.id, "broker refused the message (nack)"))
                    else:
                        published_ids.append(row.id)
                fault_point("relay.after_publish")  # confirmed by the broker, not yet marked
            finally:
                # Even when the connection breaks mid-batch, what was confirmed is recorded.
                self._record(published_ids, failures)
        self.stats.batches += 1
        return len(published_ids)

    def _record(self, published_ids: list[int], failures: list[tuple[int, str]]) -> None:
        now = timezone.now()
        with transaction.atomic():
            if published_ids:
                OutboxMessage.objects.filter(id__in=published_ids).update(published_at=now)
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
                self._sleep(self.poll_seconds)
        finally:
            self._close()
            close_old_connections()
        return self.stats

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

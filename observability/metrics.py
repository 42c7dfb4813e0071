"""Prometheus metrics: what the queue workers count, and what the database says at scrape time.

The workers are separate processes, so the counters and the histogram run in
prometheus_client's multiprocess mode: each process writes its own files under
``settings.PROMETHEUS_MULTIPROC_DIR`` (handed to prometheus_client below) and ``/metrics``
adds them up with ``MultiProcessCollector``. The database figures (outbox backlog, relay lag,
dead letters, orders per status) are not counted anywhere: a collector computes them from the
database on each scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

# prometheus_client chooses multiprocess mode from PROMETHEUS_MULTIPROC_DIR when it is first
# imported, which django_q does while Django sets up, before settings could be consulted. So the
# folder is handed over here and the choice made again, before the metrics below exist; the
# variable also tells MultiProcessCollector, django_q's cluster and the processes this one
# starts where the files are.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.PROMETHEUS_MULTIPROC_DIR
Path(settings.PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
values.ValueClass = values.get_value_class()

logger = logging.getLogger("observability.metrics")

# Outcomes as messaging/consumer.py names them.
HANDLED_OUTCOMES = ("handled", "duplicate")
FAILED_OUTCOMES = ("retry", "parked")

# registry=None: in multiprocess mode only the per-scrape registry below exposes them.
MESSAGES_HANDLED = Counter(
    "logistics_messages_handled_total",
    "Messages a queue worker handled and acked (outcome: handled, or duplicate = already handled before)",
    ["queue", "outcome"],
    registry=None,
)
MESSAGES_FAILED = Counter(
    "logistics_messages_failed_total",
    "Messages a queue worker could not handle (outcome: retry = sent to a delay queue, parked = dead letter)",
    ["queue", "outcome"],
    registry=None,
)
HANDLER_SECONDS = Histogram(
    "logistics_message_handler_seconds",
    "Time a queue worker spent on one message: decode, handler transaction, ack (every outcome)",
    ["queue"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)
# Requests let through without their request budget checked because the shared store (Redis)
# did not answer (config/throttling.py): the limits fail open, and this says how often.
REQUEST_LIMITS_UNCHECKED = Counter(
    "logistics_request_limits_unchecked_total",
    "Requests let through unlimited because the store of the request limits (Redis) did not answer",
    ["scope"],
    registry=None,
)



def request_limits_unchecked(*, scope: str) -> None:
    """One request let through without its budget checked (settings.REQUEST_LIMITS_UNCHECKED_CALLABLE)."""
    REQUEST_LIMITS_UNCHECKED.labels(scope=scope).inc()


_warned = False


def message_observed(*, queue: str, outcome: str, seconds: float) -> None:
    """Count one delivery (called by the queue worker right after its log line). Never raises:
    a metrics problem must not stop messages being handled."""
    global _warned
    try:
        if outcome in FAILED_OUTCOMES:
            MESSAGES_FAILED.labels(queue=queue, outcome=outcome).inc()
        else:
            MESSAGES_HANDLED.labels(queue=queue, outcome=outcome).inc()
        HANDLER_SECONDS.labels(queue=queue).observe(max(0.0, seconds))
    except Exception:  # noqa: BLE001
        if not _warned:
            _warned = True
            logger.warning("could not record message metrics", exc_info=True)


def _now():
    return timezone.now()


class DatabaseCollector:
    """Gauges computed from the database when /metrics is scraped."""

    def describe(self) -> list[Metric]:
        return []  # nothing to read at registration time

    def collect(self) -> Iterator[Metric]:
        from observability.selectors import metrics_snapshot

        snapshot = metrics_snapshot(now=_now())
        yield GaugeMetricFamily(
            "logistics_outbox_backlog", "Outbox rows not yet published by the relay",
            value=snapshot["outbox_backlog"])
        yield GaugeMetricFamily(
            "logistics_relay_lag_seconds", "Age of the oldest unpublished outbox row (0 when none)",
            value=snapshot["relay_lag_seconds"])
        dead = GaugeMetricFamily(
            "logistics_dead_letters", "Dead letters not yet re-driven, per queue", labels=["queue"])
        for queue, count in snapshot["dead_letters"].items():
            dead.add_metric([queue], count)
        yield dead
        orders = GaugeMetricFamily("logistics_orders", "Orders per status", labels=["status"])
        for status, count in snapshot["orders"].items():
            orders.add_metric([status], count)
        yield orders
        live = GaugeMetricFamily("logistics_workers_live",
                                 "Relays and queue workers whose heartbeat is recent", labels=["kind", "queue"])
        for (kind, queue), count in sorted(snapshot["workers_live"].items()):
            live.add_metric([kind, queue], count)
        yield live
        if snapshot["history_days_ahead"] is not None:  # PostgreSQL: partitions made ahead
            yield GaugeMetricFamily(
                "logistics_history_days_ahead",
                "Days until the message history's newest partition ends: writes stop at 0 (alert below 2)",
                value=snapshot["history_days_ahead"])
        audit = snapshot["audit"]
        if audit is not None:  # no figure before the first audit has run
            yield GaugeMetricFamily("logistics_audit_gaps",
                                    "Deliveries the last audit found neither handled nor parked",
                                    value=audit["gap_count"])
            yield GaugeMetricFamily("logistics_audit_stalled_orders",
                                    "Orders the last audit found stuck in a non-final status",
                                    value=audit["stalled_order_count"])


def registry_build() -> CollectorRegistry:
    """A fresh registry per scrape: every process's counters plus the database gauges."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return registry


def metrics_render() -> tuple[bytes, str]:
    """(exposition text, its content type)."""
    return generate_latest(registry_build()), CONTENT_TYPE_LATEST

"""Prometheus metrics: what /metrics shows, and what the database says at scrape time.

The queue workers count into prometheus_client's multiprocess files (messaging/metrics.py,
which also turns that mode on as each process starts); ``/metrics`` adds every process's files
up with ``MultiProcessCollector``. The database figures (outbox backlog, relay lag, dead
letters, orders per status) are not counted anywhere: a collector computes them from the
database on each scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

# registry=None: in multiprocess mode only the per-scrape registry below exposes it.
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

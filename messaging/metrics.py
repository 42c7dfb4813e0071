"""What the queue workers count (Prometheus): deliveries per outcome and the time each took.

The workers are separate processes, so the counters run in prometheus_client's multiprocess
mode: each process writes its own files under ``settings.PROMETHEUS_MULTIPROC_DIR`` and
``/metrics`` (observability/metrics.py) adds them up. ``metrics_multiprocess_start`` turns the
mode on; messaging's AppConfig.ready calls it once as every process starts, before anything
is counted.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from prometheus_client import Counter, Histogram, values

logger = logging.getLogger("messaging.metrics")

# Outcomes as messaging/consumer.py names them.
FAILED_OUTCOMES = ("retry", "parked")

# registry=None: in multiprocess mode only the per-scrape registry of /metrics exposes them.
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


def metrics_multiprocess_start(directory: str) -> None:
    """Count into ``directory`` from now on (made if missing), as every process of the system does.

    prometheus_client chooses multiprocess mode from PROMETHEUS_MULTIPROC_DIR when it is first
    imported, which django_q does while Django sets up, before settings could be consulted. So the
    choice is made again here; the metrics above hold no value yet (a labelled metric makes its
    values when first counted). The variable also tells MultiProcessCollector, django_q's cluster
    and the processes this one starts where the files are.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    Path(directory).mkdir(parents=True, exist_ok=True)
    values.ValueClass = values.get_value_class()


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

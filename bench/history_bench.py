"""history.json: the relay, the pipeline, the audit and the prune with a week of history in the
tables, beside the same on an empty database, in the same run (issue 25).

The history is written by PostgreSQL itself (``INSERT ... SELECT`` over ``generate_series``,
one statement a day) into the project's own tables and partitions: ``HISTORY_OUTBOX_ROWS``
published events (``order.placed``, the benchmark payload of bench/relay_bench.py) spread
evenly from the start of the day ``HISTORY_DAYS`` ago to now, and for each of them the
processed records of both queues it reaches (``new_orders``, ``support_requests``), keyed as
the workers key them. Then VACUUM ANALYZE and a CHECKPOINT: a real history was written long
before, its pages settled.

The empty database is ``BENCH_DB``, the history's ``BENCH_DB`` + ``_history``; the two sides
are measured in turns (empty, history, empty, ...) so that the machine's drift falls on both,
and are treated alike: what each run publishes stays in its side's tables, and both are
VACUUM ANALYZEd before each measurement (as autovacuum keeps a running system). In a first run
only the empty side was emptied between measurements, and the history side's lease read ever
more dead entries of the rows the earlier drains had published: that measured the missing
VACUUM, not the history.

- relay: ``RELAY_ROWS`` rows written and drained by ``OutboxRelay`` (bench/relay_bench.py's
  drain), median of ``DRAINS_PER_SIDE`` a side;
- pipeline: ``PIPELINE_ORDERS`` orders through every Procfile process (bench/pipeline_bench.py's
  road), median of ``PIPELINE_RUNS_PER_SIDE`` a side;
- audit: right after each pipeline run, one ``audit`` run (grace 0) whose previous run's
  watermark was set just before the orders were posted (as the 5-minute schedule leaves it);
- prune: ``history_prune`` with the 7-day retention: on the history side it drops the oldest
  day (its partitions detached concurrently and dropped), on the empty side nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse, urlunparse

from bench.common import BENCH_DB, broker_reset, database_reset, database_switched, write_result
from bench.pipeline_bench import orders_run
from bench.relay_bench import relay_drain_msgs_per_s, sample_payload

HISTORY_OUTBOX_ROWS = int(os.environ.get("HISTORY_OUTBOX_ROWS", 3_400_000))
HISTORY_DAYS = 8  # from the start of the day 8 days ago: the oldest whole day is past the 7-day retention
HISTORY_SUFFIX = "_history"
RETENTION = timedelta(days=7)
RELAY_ROWS = 20_000
DRAINS_PER_SIDE = int(os.environ.get("HISTORY_DRAINS", 3))
PIPELINE_ORDERS = int(os.environ.get("HISTORY_PIPELINE_ORDERS", 60))
PIPELINE_RUNS_PER_SIDE = int(os.environ.get("HISTORY_PIPELINE_RUNS", 3))
REPEATS = 1  # the sides are already measured in turns, several times each
# HISTORY_REUSE=1 keeps the history database of an earlier run and writes only the days it lacks
# (the day the earlier prune dropped): some 4 minutes instead of 26 on this machine.
REUSE = os.environ.get("HISTORY_REUSE") == "1"

# What a side's reset leaves in the history database: the history itself.
HISTORY_TABLES = ("messaging_outboxmessage", "messaging_processedmessage", "messaging_historywindow")
# The event the history holds, and the queues it reaches.
HISTORY_TYPE = "order.placed"


def history_url() -> str:
    parts = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parts._replace(path=f"/{BENCH_DB}{HISTORY_SUFFIX}"))


def history_fill(outbox_rows: int, days: int) -> int:
    """Write the history; returns how many rows (outbox rows and processed records) it holds."""
    from django.db import connection
    from django.utils import timezone

    from messaging.audit import queues_reached
    from messaging.history import day_start, history_partitions_ensure
    from messaging.registry import route_for

    now = timezone.now()
    first = (now - timedelta(days=days)).date()
    history_partitions_ensure(first=first, last=None)
    start = day_start(first)
    consumers = [route_for(queue).consumer for queue in queues_reached(
        exchange="logistics.events", routing_key=HISTORY_TYPE, type=HISTORY_TYPE)]
    payload = json.dumps(sample_payload())
    end = now - timedelta(minutes=10)  # all of it published and handled before the runs
    days_spans = []  # (day, its start, how long of it the history covers)
    day = first
    while day_start(day) < end:
        days_spans.append((day, day_start(day), min(timedelta(days=1), end - day_start(day))))
        day += timedelta(days=1)
    total = end - start
    written = 0
    with connection.cursor() as cursor:
        for n, (day, begins, covered) in enumerate(days_spans):
            rows = outbox_rows - written if n == len(days_spans) - 1 else round(outbox_rows * (covered / total))
            cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "messaging_outboxmessage_p{day:%Y%m%d}")')
            if cursor.fetchone()[0]:  # HISTORY_REUSE: this day is there from an earlier run
                written += rows
                continue
            t0 = time.monotonic()
            cursor.execute(
                """INSERT INTO messaging_outboxmessage (message_id, exchange, queue, type, correlation_id,
                       causation_id, producer, payload, created_at, published_at, attempts, last_error,
                       next_attempt_at, traceparent)
                   SELECT gen_random_uuid(), 'logistics.events', %s, %s, gen_random_uuid()::text, '', 'history',
                          %s::jsonb, t, t + interval '5 milliseconds', 0, '', t, ''
                   FROM (SELECT %s::timestamptz + %s::interval * g AS t FROM generate_series(0, %s - 1) AS g) AS s""",
                [HISTORY_TYPE, HISTORY_TYPE, payload, begins, covered / max(rows, 1), rows])  # type: ignore[list-item]  # an interval
            cursor.execute(
                f"""INSERT INTO messaging_processedmessage (consumer, message_id, processed_at, message_created_at)
                    SELECT c.consumer, o.message_id::text, o.published_at + interval '10 milliseconds',
                           date_trunc('second', o.created_at)
                    FROM "messaging_outboxmessage_p{day:%Y%m%d}" AS o
                    CROSS JOIN unnest(%s::text[]) AS c(consumer)""",
                [consumers])
            written += rows
            print(f"  history {day}: {rows:,} messages, {rows * (1 + len(consumers)):,} rows "
                  f"in {time.monotonic() - t0:.0f} s", flush=True)
        for table in ("messaging_outboxmessage", "messaging_processedmessage"):
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute("CHECKPOINT")
    return written * (1 + len(consumers))


def settle() -> None:
    """VACUUM ANALYZE the history tables, as autovacuum keeps them in a running system: both
    sides alike, so that the rows each side's earlier runs published weigh on both the same."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("messaging_outboxmessage", "messaging_processedmessage"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def history_bytes() -> int:
    """The outbox's and the processed records' size on disk: every partition, its indexes and TOAST."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0) FROM pg_inherits i "
                       "WHERE i.inhparent IN ('messaging_outboxmessage'::regclass, "
                       "'messaging_processedmessage'::regclass)")
        return int(cursor.fetchone()[0])


def history_rows_count() -> int:
    from messaging.models import OutboxMessage, ProcessedMessage

    return OutboxMessage.objects.count() + ProcessedMessage.objects.count()


def audit_watermark_now() -> None:
    """The audit's last run as its schedule leaves it: everything published so far checked."""
    from django.utils import timezone

    from observability.models import AuditRun

    now = timezone.now()
    AuditRun.objects.create(started_at=now, finished_at=now, grace_seconds=0, messages=0, deliveries=0,
                            gap_count=0, watermark=now)


def pipeline_and_audit(env: dict[str, str] | None) -> dict:
    """One pipeline run, then one audit run of what it published; on the database as it is."""
    from observability.audit import audit_run

    audit_watermark_now()
    pipeline = orders_run(orders=PIPELINE_ORDERS, env=env)
    t0 = time.perf_counter()
    run, gaps, _ = audit_run(grace=timedelta(0))
    seconds = time.perf_counter() - t0
    return {"orders_per_s": pipeline["orders_per_s"], "audit_seconds": seconds, "audit_messages": run.messages,
            "audit_gaps": len(gaps), "machine_cpu_ms_per_order": pipeline["machine_cpu_ms_per_order"]}


def prune_timed() -> dict:
    from messaging.history import history_prune

    before = history_bytes()
    t0 = time.perf_counter()
    result = history_prune(older_than=RETENTION)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "dropped": result.dropped, "kept": result.kept,
            "rows_deleted_one_by_one": result.outbox_deleted + result.processed_deleted,
            "bytes_before": before, "bytes_after": history_bytes()}


def run(repeats: int = REPEATS) -> dict:
    t0 = time.monotonic()
    with database_switched(HISTORY_SUFFIX):
        if not REUSE:
            database_reset()
        history_fill(HISTORY_OUTBOX_ROWS, HISTORY_DAYS)
        history_rows = history_rows_count()
        fill_seconds = time.monotonic() - t0
        print(f"history: {history_rows:,} rows in {fill_seconds:.0f} s", flush=True)
    database_reset()

    relay: dict[str, list[float]] = {"empty": [], "history": []}
    for _ in range(DRAINS_PER_SIDE):
        broker_reset()
        settle()
        relay["empty"].append(relay_drain_msgs_per_s(RELAY_ROWS))
        broker_reset()
        with database_switched(HISTORY_SUFFIX):
            settle()
            relay["history"].append(relay_drain_msgs_per_s(RELAY_ROWS))
        print(f"  relay msgs/s: empty {relay['empty'][-1]:.0f}, history {relay['history'][-1]:.0f}", flush=True)

    pipeline: dict[str, list[dict[str, Any]]] = {"empty": [], "history": []}
    for _ in range(PIPELINE_RUNS_PER_SIDE):
        broker_reset()
        database_reset(keep=HISTORY_TABLES)
        settle()
        pipeline["empty"].append(pipeline_and_audit(env=None))
        broker_reset()
        with database_switched(HISTORY_SUFFIX):
            database_reset(keep=HISTORY_TABLES)
            settle()
            pipeline["history"].append(pipeline_and_audit(env={"DATABASE_URL": history_url()}))
        print(f"  pipeline: empty {pipeline['empty'][-1]}, history {pipeline['history'][-1]}", flush=True)

    prune_empty = prune_timed()
    with database_switched(HISTORY_SUFFIX):
        prune_history = prune_timed()
        rows_after_prune = history_rows_count()
    database_reset()
    broker_reset()

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in pipeline[side])

    relay_empty, relay_history = statistics.median(relay["empty"]), statistics.median(relay["history"])
    figures = {
        "history_rows": history_rows,
        "history_outbox_rows": HISTORY_OUTBOX_ROWS,
        "history_days": HISTORY_DAYS,
        "history_fill_seconds": round(fill_seconds),
        "relay_msgs_per_s_empty": round(relay_empty),
        "relay_msgs_per_s_history": round(relay_history),
        "relay_ratio_history_to_empty": round(relay_history / relay_empty, 3),
        "pipeline_orders_per_run": PIPELINE_ORDERS,
        "pipeline_orders_per_s_empty": round(median("empty", "orders_per_s"), 2),
        "pipeline_orders_per_s_history": round(median("history", "orders_per_s"), 2),
        "pipeline_ratio_history_to_empty": round(median("history", "orders_per_s") / median("empty", "orders_per_s"),
                                                 3),
        "audit_seconds_empty": round(median("empty", "audit_seconds"), 3),
        "audit_seconds_history": round(median("history", "audit_seconds"), 3),
        "audit_time_ratio_history_to_empty": round(median("history", "audit_seconds")
                                                   / median("empty", "audit_seconds"), 3),
        "audit_messages_checked_history": round(median("history", "audit_messages")),
        "prune_day_seconds": round(prune_history["seconds"], 3),
        "prune_rows_deleted_one_by_one": prune_history["rows_deleted_one_by_one"],
        "prune_partitions_dropped": prune_history["dropped"],
        "prune_partitions_kept": prune_history["kept"],
        "prune_seconds_empty": round(prune_empty["seconds"], 3),
        "history_rows_after_prune": rows_after_prune,
        "history_bytes_before_prune": prune_history["bytes_before"],
        "history_bytes_after_prune": prune_history["bytes_after"],
        "empty_bytes_before_prune": prune_empty["bytes_before"],
        "empty_bytes_after_prune": prune_empty["bytes_after"],
        "targets": {"relay_ratio_history_to_empty": ">= 0.9", "pipeline_ratio_history_to_empty": ">= 0.9",
                    "audit_time_ratio_history_to_empty": "<= 1.5", "prune_day_seconds": "<= 1",
                    "prune_rows_deleted_one_by_one": "0", "history_rows": ">= 10,000,000 over >= 7 days"},
    }
    write_result("history", figures, [{"relay_msgs_per_s": relay}, {"pipeline": pipeline},
                                      {"prune_empty": prune_empty, "prune_history": prune_history}])
    return figures

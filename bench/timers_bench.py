"""timers.json: how late a timer is handled, and what 100,000 timers due tomorrow cost an idle relay.

Lateness: a real ``manage.py relay_outbox`` and a real ``manage.py consume payment_requests``
worker; this process sets ``payment.charge_due`` timers (``messaging.timers.timer_set``, the
call payments makes) in transactions of ten, a hundred transactions a second, each due 0.5 to
1.0 s later, so the relay has to wake up for the due time rather than send the row when it is
committed. A timer's lateness is the moment its handler started (``ProcessedMessage.processed_at``
of ``payments.payment_requests``, written in the handler's transaction) minus its ``due_at``;
its publish lateness is ``published_at`` (written by the relay once the broker confirmed it)
minus ``due_at``. No payment exists for the random ids, so the handler stops after its lookup:
what is measured is the timer's road, not the charge.

Idle: a real relay with nothing waiting, then with 100,000 timers due tomorrow in the outbox
(written with ``bulk_create``; the relay's due index lists them): CPU time of the
relay process, and of its PostgreSQL backends (where a lease or a due-time lookup that read the
whole list would show), over the same spell each. The figures are read to the nanosecond
(``cpu_seconds_fine``): an idle relay uses a few clock ticks in 20 s, so utime + stime (kept
beside them in ``idle``) moves in steps of half its own size. The outbox and its list are
analyzed before the relay starts, as autovacuum leaves them in a deployment whose relay keeps
the list empty (truncated, they would be never analyzed, a state no deployment is in); a
statement the relay prepared then keeps the plan made for an empty list until autovacuum next
vacuums or analyzes it, so whether it did before or during the spell is recorded too. None of
those timers may be sent; they are deleted afterwards. Measured once per benchmark (the 100,000
rows take a while to write), after the lateness runs.
"""

from __future__ import annotations

import random
import re
import time
import uuid
from datetime import timedelta
from typing import Any

from bench.common import (
    LOGS,
    Processes,
    broker_reset,
    cpu_seconds,
    cpu_seconds_fine,
    database_reset,
    median_of,
    percentile,
    wait_for,
    write_result,
)

TIMERS_PER_TRANSACTION = 10
TRANSACTIONS_PER_S = 100.0
SET_SECONDS = 10.0
TRANSACTIONS = int(TRANSACTIONS_PER_S * SET_SECONDS)
TIMERS = TRANSACTIONS * TIMERS_PER_TRANSACTION
AFTER_SECONDS = (0.5, 1.0)  # longer than a commit-to-consume hand-off: the relay must wake for the due time
# One transaction due at once, before the measured ones: both processes connected and warm.
WARMUP_TIMERS = TIMERS_PER_TRANSACTION
IDLE_SECONDS = 20.0
SETTLE_SECONDS = 5.0
FAR_TIMERS = 100_000
PRODUCER = "bench"
WARMUP_PRODUCER = "bench-warmup"
FAR_PRODUCER = "bench-far"
REPEATS = 3


def timers_set(*, transactions: int, rate_per_s: float | None, producer: str, rng: random.Random,
               after: tuple[float, float]) -> float:
    """``transactions`` transactions of TIMERS_PER_TRANSACTION charge timers each (one order each),
    paced at ``rate_per_s`` (None: as fast as they go). Returns the seconds it took."""
    from django.db import transaction

    from contracts.messages import PaymentChargeDue
    from messaging.timers import timer_set
    from messaging.topology import PAYMENT_REQUESTS

    started = time.monotonic()
    for i in range(transactions):
        if rate_per_s:
            pause = started + i / rate_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        order_id = uuid.uuid4()
        with transaction.atomic():
            for _ in range(TIMERS_PER_TRANSACTION):
                timer_set(PaymentChargeDue(order_id=order_id, payment_id=uuid.uuid4()), queue=PAYMENT_REQUESTS,
                          correlation_id=order_id, producer=producer, after=rng.uniform(*after))
    return time.monotonic() - started


def handled_count() -> int:
    from messaging.models import ProcessedMessage
    from payments.handlers import CONSUMER

    return ProcessedMessage.objects.filter(consumer=CONSUMER).count()


def lateness_run(seed: int) -> dict:
    from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
    from messaging.topology import PAYMENT_REQUESTS
    from payments.handlers import CONSUMER

    broker_reset()
    database_reset()
    rng = random.Random(seed)
    with Processes() as procs:
        relay = procs.manage("timers-relay", "relay_outbox")
        consumer = procs.manage("timers-consumer", "consume", PAYMENT_REQUESTS)
        timers_set(transactions=1, rate_per_s=None, producer=WARMUP_PRODUCER, rng=rng, after=(0.0, 0.0))
        wait_for(lambda: handled_count() >= WARMUP_TIMERS, timeout=60, what="the warm-up timers handled")
        cpu = {"relay": cpu_seconds_fine(relay.pid), "consumer": cpu_seconds_fine(consumer.pid)}
        seconds = timers_set(transactions=TRANSACTIONS, rate_per_s=TRANSACTIONS_PER_S, producer=PRODUCER, rng=rng,
                             after=AFTER_SECONDS)
        wait_for(lambda: handled_count() >= WARMUP_TIMERS + TIMERS, timeout=60 + AFTER_SECONDS[1],
                 what=f"{TIMERS} timers handled", interval=0.2)
        cpu = {"relay": cpu_seconds_fine(relay.pid) - cpu["relay"],
               "consumer": cpu_seconds_fine(consumer.pid) - cpu["consumer"]}
    relay_counts, worker_counts = stopped_counts("timers-relay"), stopped_counts("timers-consumer")
    processed = dict(ProcessedMessage.objects.filter(consumer=CONSUMER).values_list("message_id", "processed_at"))
    timers: list[Any] = list(OutboxMessage.objects.filter(producer=PRODUCER).values_list(
        "message_id", "due_at", "published_at"))
    lateness = [(processed[str(mid)] - due).total_seconds() * 1000 for mid, due, _ in timers]
    publish_lateness = [(published - due).total_seconds() * 1000 for _, due, published in timers]
    # From the relay's mark (written once the broker confirmed: after the message left) to the
    # handler: the worker's share, slightly understated (negative when it was quicker than the confirm).
    consume_after_publish = [(processed[str(mid)] - published).total_seconds() * 1000
                             for mid, _, published in timers]
    return {
        "timers": len(timers),
        "timers_handled": sum(1 for mid, _, _ in timers if str(mid) in processed),
        "set_rate_per_s": round(len(timers) / seconds, 1),
        "timer_lateness_p50_ms": percentile(lateness, 0.5),
        "timer_lateness_p99_ms": percentile(lateness, 0.99),
        "timer_lateness_max_ms": max(lateness),
        "timer_early_count": sum(1 for ms in lateness if ms < 0),
        "publish_lateness_p50_ms": percentile(publish_lateness, 0.5),
        "publish_lateness_p99_ms": percentile(publish_lateness, 0.99),
        "publish_lateness_max_ms": max(publish_lateness),
        "publish_early_count": sum(1 for ms in publish_lateness if ms < 0),
        "consume_after_publish_p50_ms": percentile(consume_after_publish, 0.5),
        "consume_after_publish_p99_ms": percentile(consume_after_publish, 0.99),
        "dead_letters": DeadLetter.objects.count(),
        # a retry goes through the 1 s delay queue: it would show as a second of lateness
        "worker_retried": worker_counts.get("retried", -1),
        # batches the relay published (the warm-up's included): how often it woke up to find timers due
        "relay_batches": relay_counts.get("batches", -1),
        # CPU time per timer of the two processes on the road (the relay's includes its wake-ups)
        "relay_cpu_ms_per_timer": 1000 * cpu["relay"] / TIMERS,
        "consumer_cpu_ms_per_timer": 1000 * cpu["consumer"] / TIMERS,
    }


def stopped_counts(name: str) -> dict[str, int]:
    """The counts a stopped command printed last (``relay stopped: published=.. batches=..``,
    ``worker .. stopped: handled=.. retried=..``), from its log."""
    lines = [line for line in (LOGS / f"{name}.log").read_text().splitlines() if " stopped: " in line]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", lines[-1])} if lines else {}


def _other_backends() -> list[int]:
    """The PostgreSQL backends connected to this database, this process's own aside (while the
    relay is the only other client: its connection and its LISTEN connection)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY pid")
        return [row[0] for row in cursor.fetchall()]


def idle_cpu(relay) -> dict:
    """CPU of the idle relay process and of its database backends over IDLE_SECONDS, in % of one CPU."""
    backends = _other_backends()
    start = time.monotonic()
    ticks, fine = cpu_seconds(relay.pid), cpu_seconds_fine(relay.pid)
    database = sum(cpu_seconds_fine(pid) for pid in backends)
    time.sleep(IDLE_SECONDS)
    ticks, fine = cpu_seconds(relay.pid) - ticks, cpu_seconds_fine(relay.pid) - fine
    database = sum(cpu_seconds_fine(pid) for pid in backends) - database
    wall = time.monotonic() - start
    if relay.poll() is not None or _other_backends() != backends:
        raise RuntimeError("the relay exited or reconnected while it was measured idle "
                           "(its log: .run/bench-logs/timers-relay.log)")
    return {
        "relay_cpu_pct": 100 * fine / wall,
        "relay_cpu_pct_ticks": 100 * ticks / wall,
        "relay_db_cpu_pct": 100 * database / wall,
        "relay_db_backends": len(backends),
    }


def far_timers_insert(count: int) -> None:
    """``count`` charge timers due tomorrow (spread over a minute), in one transaction."""
    from django.db import transaction
    from django.utils import timezone

    from contracts.messages import PaymentChargeDue
    from messaging.models import OutboxMessage
    from messaging.topology import PAYMENT_REQUESTS

    tomorrow = timezone.now() + timedelta(days=1)
    rows = []
    for i in range(count):
        order_id, due = str(uuid.uuid4()), tomorrow + timedelta(microseconds=600 * i)
        payload = {"order_id": order_id, "payment_id": str(uuid.uuid4())}
        rows.append(OutboxMessage(queue=PAYMENT_REQUESTS, type=PaymentChargeDue.TYPE, correlation_id=order_id,
                                  producer=FAR_PRODUCER, payload=payload, due_at=due, next_attempt_at=due))
    with transaction.atomic():
        OutboxMessage.objects.bulk_create(rows, batch_size=5000)


def pending_autovacuum_visits() -> int:
    """How many times autovacuum has vacuumed or analyzed the outbox (the relay's due index's table) so far.

    Either one updates the list's statistics, which makes every connection plan its statements
    on it afresh, prepared ones included: whether one ran between the 100,000 timers' insert and
    the end of the idle spell tells which plans the relay's backends were using.
    """
    from django.db import connection

    from messaging.models import OutboxMessage

    with connection.cursor() as cursor:
        cursor.execute("SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables WHERE relname = %s",
                       [OutboxMessage._meta.db_table])
        row = cursor.fetchone()
    return row[0] if row else 0


def relay_tables_analyze() -> None:
    """Statistics on the outbox and its work list as a running deployment has them: taken by
    autovacuum while the relay kept the list (nearly) empty.

    ``database_reset`` truncates them, which leaves them never analyzed, a state a deployment's
    tables are not in (the planner then assumes ten pages' worth of rows, not none).
    """
    from django.db import connection

    from messaging.models import OutboxMessage

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboxMessage._meta.db_table}")


def idle_run() -> dict:
    from messaging import broker
    from messaging.models import OutboxMessage
    from messaging.topology import PAYMENT_REQUESTS

    broker_reset()
    database_reset()
    relay_tables_analyze()
    with Processes() as procs:
        relay = procs.manage("timers-relay", "relay_outbox")
        visits = [pending_autovacuum_visits()]
        time.sleep(SETTLE_SECONDS)
        empty = idle_cpu(relay)
        visits.append(pending_autovacuum_visits())
        started = time.monotonic()
        far_timers_insert(FAR_TIMERS)
        insert_seconds = time.monotonic() - started
        listed = OutboxMessage.objects.filter(published_at__isnull=True).count()
        time.sleep(SETTLE_SECONDS)  # the relay wakes for the insert's NOTIFY, finds nothing due, sleeps
        visits.append(pending_autovacuum_visits())
        loaded = idle_cpu(relay)
        visits.append(pending_autovacuum_visits())
        published = OutboxMessage.objects.filter(producer=FAR_PRODUCER, published_at__isnull=False).count()
        queued = (broker.queue_depths([PAYMENT_REQUESTS])[PAYMENT_REQUESTS] or (0, 0))[0]  # None: no such queue
    deleted, _ = OutboxMessage.objects.filter(producer=FAR_PRODUCER).delete()
    return {
        "empty": empty | {"pending_autovacuumed_during_spell": visits[1] - visits[0]},
        "far_timers": loaded | {"listed_in_pending": listed, "insert_seconds": round(insert_seconds, 1),
                                "published": published, "in_queue": queued, "deleted": deleted,
                                "pending_after_delete": OutboxMessage.objects.filter(published_at__isnull=True).count(),
                                "pending_autovacuumed_before_spell": visits[2] - visits[1],
                                "pending_autovacuumed_during_spell": visits[3] - visits[2]},
    }


def run(repeats: int = REPEATS) -> dict:
    runs = [lateness_run(seed) for seed in range(repeats)]
    idle = idle_run()
    database_reset()
    empty, far = idle["empty"], idle["far_timers"]
    figures = {
        "timers_per_run": TIMERS,
        "timers_per_s": TIMERS_PER_TRANSACTION * TRANSACTIONS_PER_S,
        "timers_per_transaction": TIMERS_PER_TRANSACTION,
        "after_seconds": list(AFTER_SECONDS),
        "timers_handled": sum(r["timers_handled"] for r in runs),
        **{key: round(median_of(runs, key), 2) for key in (
            "set_rate_per_s", "timer_lateness_p50_ms", "timer_lateness_p99_ms", "timer_lateness_max_ms",
            "publish_lateness_p50_ms", "publish_lateness_p99_ms", "consume_after_publish_p50_ms",
            "consume_after_publish_p99_ms", "relay_cpu_ms_per_timer", "consumer_cpu_ms_per_timer")},
        "timer_early_count": sum(r["timer_early_count"] for r in runs),  # over every run
        "publish_early_count": sum(r["publish_early_count"] for r in runs),
        "dead_letters": sum(r["dead_letters"] for r in runs),
        "worker_retried": sum(r["worker_retried"] for r in runs),
        "relay_batches": round(median_of(runs, "relay_batches")),
        "idle_seconds": IDLE_SECONDS,
        "idle_relay_cpu_pct_0_timers": round(empty["relay_cpu_pct"], 3),
        "idle_relay_cpu_pct_100k_timers": round(far["relay_cpu_pct"], 3),
        "idle_relay_cpu_ratio_100k_to_0": (round(far["relay_cpu_pct"] / empty["relay_cpu_pct"], 2)
                                           if empty["relay_cpu_pct"] else None),
        "idle_relay_db_cpu_pct_0_timers": round(empty["relay_db_cpu_pct"], 3),
        "idle_relay_db_cpu_pct_100k_timers": round(far["relay_db_cpu_pct"], 3),
        "idle_relay_db_cpu_ratio_100k_to_0": (round(far["relay_db_cpu_pct"] / empty["relay_db_cpu_pct"], 2)
                                              if empty["relay_db_cpu_pct"] else None),
        "far_timers_published": far["published"],
        "far_timers_in_queue": far["in_queue"],
        "targets": {"timer_lateness_p99_ms": "<= 50", "timer_early_count": "0",
                    "idle_relay_cpu_pct_100k_timers": "no more than with none (idle_relay_cpu_pct_0_timers)",
                    "idle_relay_db_cpu_pct_100k_timers": "no more than with none (idle_relay_db_cpu_pct_0_timers)",
                    "far_timers_published": "0", "far_timers_in_queue": "0"},
    }
    write_result("timers", {**figures, "idle": idle}, runs)
    if far["published"] or far["in_queue"] or far["deleted"] != FAR_TIMERS or far["pending_after_delete"]:
        raise RuntimeError(f"timers due tomorrow went out, or were not all cleaned up: {far}")
    return figures

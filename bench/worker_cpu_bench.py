"""worker_cpu.json: a worker's CPU per message when each arrives alone, and when they arrive together.

A real ``manage.py relay_outbox`` and a real ``manage.py consume customer_notifications`` worker
(the product's handler of ``customer.notified``: the shop locks the order and records what the
customer was told). The same message, MESSAGES times, fed two ways, in turns in the same worker:

- alone: one outbox row committed, then the next only once the worker has recorded the first
  (each delivery finds the worker idle: a transaction, an inbox insert and an ack of its own);
- together: MESSAGES rows committed in one transaction; the relay publishes them in one batch
  and the worker holds up to its prefetch, handled up to ``CONSUMER_TRANSACTION_BATCH`` in a
  transaction.

The figure is the worker process's CPU time (every thread, to the nanosecond) over each spell,
per message; its idle CPU over a spell as long is measured too (heartbeats, the broker's I/O
loop), and ``*_net`` subtracts it. Messages per transaction are read from the processed records
(one insert per transaction gives them one ``processed_at``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from bench.common import Processes, broker_reset, cpu_seconds_fine, database_reset, wait_for, write_result

MESSAGES = 300
WARMUP = 100
REPEATS = 3  # workers, each a fresh process
SPELLS = 3  # alone, then together, this many times in each worker
QUEUE = "customer_notifications"
CONSUMER = "shop.customer_notifications"


def feed(order_id: str, count: int, start: int) -> None:
    """``count`` ``customer.notified`` rows in the outbox, in one transaction."""
    from django.utils import timezone

    from messaging.models import OutboxMessage

    now = timezone.now().isoformat()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(queue=QUEUE, type="customer.notified", correlation_id=order_id, producer="bench",
                      payload={"order_id": order_id, "shipment_id": "SHP-BENCH", "status": "vehicle_assigned",
                               "message": f"bench {start + i}", "timestamp": now})
        for i in range(count)
    )


def handled() -> int:
    from messaging.models import ProcessedMessage

    return ProcessedMessage.objects.filter(consumer=CONSUMER).count()


def handled_at_least(count: int) -> Callable[[], bool]:
    """For ``wait_for``: ``count`` messages handled (``count`` as it is now, not when asked)."""
    return lambda: handled() >= count


def transactions_since(moment) -> int:
    from messaging.models import ProcessedMessage

    return (ProcessedMessage.objects.filter(consumer=CONSUMER, processed_at__gt=moment)
            .values("processed_at").distinct().count())


def spell(pid: int, body) -> tuple[float, float]:
    """CPU seconds of ``pid`` and wall seconds while ``body()`` runs."""
    cpu, wall = cpu_seconds_fine(pid), time.monotonic()
    body()
    return cpu_seconds_fine(pid) - cpu, time.monotonic() - wall


def one_run() -> dict:
    from django.utils import timezone

    from bench.latency_bench import seed_order
    from messaging.models import DeadLetter, OutboxMessage

    broker_reset()
    database_reset()
    order_id = seed_order()
    OutboxMessage.objects.all().update(published_at=timezone.now())  # only the bench's rows travel
    figures: dict[str, list[float]] = {"alone": [], "together": [], "idle_per_s": [], "per_transaction": []}
    with Processes() as procs:
        procs.manage("worker-cpu-relay", "relay_outbox")
        worker = procs.manage("worker-cpu-consumer", "consume", QUEUE)
        fed = 0
        feed(order_id, WARMUP, fed)  # both connected, every code path imported and warm
        fed += WARMUP
        wait_for(lambda: handled() >= WARMUP, timeout=120, what="the warm-up handled")

        def alone() -> None:
            nonlocal fed
            for _ in range(MESSAGES):
                feed(order_id, 1, fed)
                fed += 1
                wait_for(handled_at_least(fed), timeout=30, what="a message handled", interval=0.002)

        def together() -> None:
            nonlocal fed
            feed(order_id, MESSAGES, fed)
            fed += MESSAGES
            wait_for(handled_at_least(fed), timeout=120, what=f"{MESSAGES} messages handled",
                     interval=0.002)

        for _ in range(SPELLS):  # in turns: the machine's speed drifts
            cpu, wall_alone = spell(worker.pid, alone)
            figures["alone"].append(cpu / MESSAGES)
            since = timezone.now()
            cpu, _ = spell(worker.pid, together)
            figures["together"].append(cpu / MESSAGES)
            figures["per_transaction"].append(MESSAGES / max(1, transactions_since(since)))
            pause = min(wall_alone, 10.0)
            idle, wall = spell(worker.pid, lambda s=pause: time.sleep(s))
            figures["idle_per_s"].append(idle / wall)
            figures.setdefault("alone_wall_s", []).append(wall_alone)
        parked = DeadLetter.objects.count()
    if parked:
        raise RuntimeError(f"{parked} messages parked: see .run/bench-logs/worker-cpu-consumer.log")
    return figures


def run(repeats: int = REPEATS) -> dict:
    """``repeats`` workers (a fresh process each), each measured SPELLS times per way, in turns."""
    runs = [one_run() for _ in range(repeats)]
    database_reset()

    def ms(key: str) -> list[float]:
        return [round(v * 1000, 3) for r in runs for v in r[key]]

    idle_ms_per_s = statistics.median(v * 1000 for r in runs for v in r["idle_per_s"])
    alone_wall = statistics.median(v for r in runs for v in r["alone_wall_s"])
    together_wall = 0.0  # a burst: a second at most, its idle share negligible
    alone, together = ms("alone"), ms("together")
    figures = {
        "queue": QUEUE,
        "type": "customer.notified",
        "messages_per_spell": MESSAGES,
        "worker_cpu_ms_per_message_alone": round(statistics.median(alone), 3),
        "worker_cpu_ms_per_message_together": round(statistics.median(together), 3),
        "ratio_alone_to_together": round(statistics.median(alone) / statistics.median(together), 2),
        "worker_cpu_ms_per_message_alone_net": round(
            statistics.median(alone) - idle_ms_per_s * alone_wall / MESSAGES, 3),
        "worker_cpu_ms_per_message_together_net": round(statistics.median(together) - together_wall, 3),
        "worker_idle_cpu_ms_per_s": round(idle_ms_per_s, 3),
        "messages_per_transaction_together": round(statistics.median(v for r in runs for v in r["per_transaction"]), 1),
        "alone_spells_ms": alone,
        "together_spells_ms": together,
    }
    write_result("worker_cpu", figures, runs)
    return figures

"""memory.json: resident memory of a queue worker and of the relay after 1k, 10k, 30k, 50k, 70k
and 90k messages.

The relay holds one batch at a time (``RELAY_BATCH_SIZE`` rows) whatever the backlog. Its
memory reaches that ceiling within the first backlogs and stays there: 30k -> 50k -> 70k -> 90k
shows it.
"""

from __future__ import annotations

import itertools
import time

from bench.common import Processes, broker_reset, database_reset, rss_kib, wait_for, write_result

CHECKPOINTS = (1_000, 10_000, 30_000, 50_000, 70_000, 90_000)
REPEATS = 2  # about 5 minutes a run (90,000 messages through one worker)


def feed(order_id: str, count: int, start: int) -> None:
    from django.utils import timezone

    from messaging.models import OutboxMessage

    now = timezone.now().isoformat()
    OutboxMessage.objects.bulk_create(
        OutboxMessage(queue="customer_notifications", type="customer.notified", correlation_id=order_id,
                      producer="bench", payload={"order_id": order_id, "shipment_id": "SHP-BENCH",
                                                 "status": "vehicle_assigned", "message": f"bench {start + i}",
                                                 "timestamp": now})
        for i in range(count)
    )


def one_run() -> dict:
    from django.utils import timezone

    from bench.latency_bench import seed_order
    from messaging.models import OutboxMessage, ProcessedMessage

    broker_reset()
    database_reset()
    order_id = seed_order()
    OutboxMessage.objects.all().update(published_at=timezone.now())
    figures: dict[str, float] = {}
    with Processes() as procs:
        relay = procs.manage("relay", "relay_outbox")
        consumer = procs.manage("consumer", "consume", "customer_notifications")
        time.sleep(3)
        figures["relay_rss_kib_start"] = rss_kib(relay.pid)
        figures["consumer_rss_kib_start"] = rss_kib(consumer.pid)
        sent = 0
        for checkpoint in CHECKPOINTS:
            feed(order_id, checkpoint - sent, sent)
            sent = checkpoint
            wait_for(lambda n=sent: ProcessedMessage.objects.count() >= n,  # type: ignore[misc]  # n: this round's
                     timeout=300, what=f"{sent} messages handled")
            figures[f"relay_rss_kib_after_{checkpoint}"] = rss_kib(relay.pid)
            figures[f"consumer_rss_kib_after_{checkpoint}"] = rss_kib(consumer.pid)
    return figures


def run(repeats: int = REPEATS) -> dict:
    import statistics

    runs = [one_run() for _ in range(repeats)]
    database_reset()
    figures = {key: round(statistics.median(r[key] for r in runs)) for key in runs[0]}
    for low, high in itertools.pairwise(CHECKPOINTS):
        for role in ("relay", "consumer"):
            figures[f"{role}_growth_kib_{low}_to_{high}"] = (
                figures[f"{role}_rss_kib_after_{high}"] - figures[f"{role}_rss_kib_after_{low}"])
    figures["target"] = "flat: the consumer throughout; the relay once it holds its batches (from 30k on)"
    write_result("memory", figures, runs)
    return figures

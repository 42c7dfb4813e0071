"""latency.json: from the commit of an outbox row to its handler starting, through the real
relay and a real queue worker, beside raw pika's publish -> consume."""

from __future__ import annotations

import time
import uuid

from bench.common import Processes, broker_reset, database_reset, median_of, percentile, wait_for, write_result
from bench.raw import raw_publish_to_consume_ms

MESSAGES = 1000
RATE_PER_S = 200.0  # paced: this measures hand-off latency, not throughput


def seed_order() -> str:
    """One real order for the customer_notifications handler to update."""
    from django.core.management import call_command

    from shop.services import Contact, OrderItem, customer_create, order_place

    call_command("load_demo_data", verbosity=0)
    customer, _ = customer_create(username=f"bench-{uuid.uuid4().hex[:6]}", email="bench@example.com")
    order = order_place(customer=customer, contact=Contact(name="Bench"), shipping_address={"street": "x"},
                        items=[OrderItem(product_id="PRD004", quantity=1)], shipping_method="standard",
                        payment_method="credit_card")
    return str(order.id)


def one_run() -> dict:
    from django.db import transaction
    from django.utils import timezone

    from contracts.messages import CustomerNotified
    from contracts.stages import ShipmentStage
    from messaging.models import OutboxMessage, ProcessedMessage
    from messaging.outbox import outbox_emit

    broker_reset()
    database_reset()
    order_id = seed_order()
    OutboxMessage.objects.all().update(published_at=timezone.now())  # only the measured rows travel
    committed_at: dict[str, float] = {}
    with Processes() as procs:
        procs.manage("relay", "relay_outbox")
        procs.manage("consumer", "consume", "customer_notifications")
        time.sleep(3)  # both connected and idle
        gap = 1.0 / RATE_PER_S
        for i in range(MESSAGES):
            with transaction.atomic():
                row = outbox_emit(
                    CustomerNotified(order_id=uuid.UUID(order_id), shipment_id="SHP-BENCH",
                                     status=ShipmentStage.VEHICLE_ASSIGNED,
                                     message=f"bench {i}", timestamp=timezone.now()),
                    queue="customer_notifications", correlation_id=order_id, producer="bench",
                )
            committed_at[str(row.message_id)] = time.time()
            time.sleep(gap)
        wait_for(lambda: ProcessedMessage.objects.count() >= MESSAGES, timeout=120, what="every message handled")
    handled = dict(ProcessedMessage.objects.values_list("message_id", "processed_at"))
    latencies = [(handled[mid].timestamp() - t) * 1000 for mid, t in committed_at.items()]
    raw = raw_publish_to_consume_ms(_url(), messages=MESSAGES, rate_per_s=RATE_PER_S)
    return {
        "commit_to_consume_p50_ms": percentile(latencies, 0.5),
        "commit_to_consume_p99_ms": percentile(latencies, 0.99),
        "raw_publish_to_consume_p50_ms": raw["p50"],
        "raw_publish_to_consume_p99_ms": raw["p99"],
    }


def _url() -> str:
    """The first node RABBITMQ_URL names (raw pika's baseline takes one URL)."""
    from messaging import broker

    return broker.node_urls()[0]


def run(repeats: int = 3) -> dict:
    runs = [one_run() for _ in range(repeats)]
    database_reset()
    figures = {
        "messages_per_run": MESSAGES,
        "rate_per_s": RATE_PER_S,
        **{key: round(median_of(runs, key), 2) for key in runs[0]},
        "targets": {"commit_to_consume_p50_ms": "<= 10", "commit_to_consume_p99_ms": "<= 50"},
    }
    write_result("latency", figures, runs)
    return figures

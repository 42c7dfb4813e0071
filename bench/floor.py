"""The messaging floor: the pipeline's message flow with no business logic in any handler.

Per order the pipeline writes 15 outbox rows and handles 16 deliveries (``order.confirmed``
is published to two queues). With SIM_TIME_SCALE=0 the scheduled steps (payment charge,
picking, every shipment stage) run inside the handler's transaction, so each queue's
handler emits its next hop directly:

    new_orders              order.placed            -> publish order.confirmed (order_confirmations, payment_requests)
    order_confirmations     order.confirmed         -> nothing
    payment_requests        order.confirmed         -> payment.captured to payment_results
    payment_results         payment.captured        -> order.paid to fulfilment_requests
    fulfilment_requests     order.paid              -> shipment.requested to shipping_orders
    shipping_orders         shipment.requested      -> 5 x shipment.status_changed to delivery_updates
    delivery_updates        shipment.status_changed -> customer.notified to customer_notifications
    customer_notifications  customer.notified       -> nothing

(five stages: at SIM_TIME_SCALE=0 a vehicle is released in the transaction that took it, so
no shipment ever waits for one). Payloads have the real ones' shape and size.

A floor run keeps everything the platform guarantees costs -- the real relay (confirms,
``mandatory``), real RabbitMQ and PostgreSQL, the real ``QueueWorker`` (processed record in
the handler's transaction, acks after commit) under the production consumer names -- and
replaces each handler by one that only writes those outbox rows (``bench/floor_worker.py``).
Its orders/s is the most the pipeline could reach on this machine if business logic and the
web requests cost nothing (the starting `order.placed` rows are written directly).
"""

from __future__ import annotations

import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.common import Processes, broker_reset, database_reset, wait_for

# The order the pipeline benchmark places (one wireless mouse for the seed's customer),
# so that the floor's payloads have the real ones' size and shape.
RECIPIENT = "Jaan Tamm"
SHIPPING_ADDRESS = {"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117", "country": "Estonia"}
SHIPPING_METHOD = "express"
ITEMS = [{"product_id": "PRD004", "name": "Wireless mouse", "quantity": 1}]
TOTAL = "99.99"
CURRENCY = "EUR"
VEHICLE = "VEH001"
# transport's stages of one shipment when a vehicle is free, with the message each carries
STAGES = (
    ("vehicle_assigned", f"Vehicle {VEHICLE} assigned"),
    ("picked_up", f"Picked up from the warehouse by {VEHICLE}"),
    ("in_transit", f"In transit to {SHIPPING_ADDRESS['city']}"),
    ("out_for_delivery", f"Out for delivery in {SHIPPING_ADDRESS['city']}"),
    ("delivered", "Delivered"),
)
DELIVERIES_PER_ORDER = 16


def order_placed_payload(order_id: str) -> dict:
    """The shop's ``order.placed`` payload for the benchmark's order."""
    from django.utils import timezone

    return {
        "order_id": order_id,
        "recipient": RECIPIENT,
        "shipping_address": SHIPPING_ADDRESS,
        "shipping_method": SHIPPING_METHOD,
        "items": ITEMS,
        "total": TOTAL,
        "currency": CURRENCY,
        "placed_at": timezone.now().isoformat(),
    }


def _order_place() -> None:
    from django.db import transaction

    from messaging.outbox import outbox_emit
    from messaging.topology import NEW_ORDERS

    order_id = str(uuid.uuid4())
    with transaction.atomic():
        outbox_emit(queue=NEW_ORDERS, type="order.placed", correlation_id=order_id, producer="shop",
                    payload=order_placed_payload(order_id))


def _listening_relays() -> int:
    """Relays LISTENing for outbox commits on the benchmark database (they LISTEN once started)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query ILIKE 'LISTEN %%'")
        return cursor.fetchone()[0]


def _every_queue_consumed() -> bool:
    from messaging import broker
    from messaging.topology import WORK_QUEUES

    depths = broker.queue_depths(list(WORK_QUEUES))
    return all(d is not None and d[1] >= 1 for d in depths.values())


def _deliveries_handled(expected: int) -> bool:
    from messaging.models import DeadLetter, ProcessedMessage

    parked = DeadLetter.objects.count()
    if parked:
        raise RuntimeError(f"{parked} message(s) parked during the floor run (see messaging_deadletter)")
    return ProcessedMessage.objects.count() >= expected


def one_floor_run(orders: int = 300, clients: int = 8) -> dict:
    """``orders`` chains through the real relay and floor workers; orders/s until all are handled."""
    from django.db import connection

    from messaging.models import OutboxMessage, ProcessedMessage
    from messaging.registry import route_for
    from messaging.topology import CUSTOMER_NOTIFICATIONS, WORK_QUEUES

    broker_reset()
    database_reset()
    with Processes() as procs:
        procs.manage("floor-relay", "relay_outbox")
        for queue in WORK_QUEUES:
            procs.start(f"floor-{queue}", [sys.executable, "bench/floor_worker.py", queue])
        wait_for(lambda: _listening_relays() >= 1 and _every_queue_consumed(), timeout=60,
                 what="the relay and a floor worker on every queue", interval=0.2)

        def client(first: int) -> None:
            try:
                for _ in range(first, orders, clients):
                    _order_place()
            finally:
                connection.close()  # this thread's own connection

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        wait_for(lambda: _deliveries_handled(orders * DELIVERIES_PER_ORDER), timeout=300,
                 what=f"{orders} floor orders ({orders * DELIVERIES_PER_ORDER} deliveries) handled", interval=0.1)
        finished = time.perf_counter()

    notified = ProcessedMessage.objects.filter(consumer=route_for(CUSTOMER_NOTIFICATIONS).consumer).count()
    rows = OutboxMessage.objects.count()
    if notified != orders * len(STAGES) or rows != orders * (DELIVERIES_PER_ORDER - 1):
        raise RuntimeError(f"floor run: {notified} customer.notified handled and {rows} outbox rows, expected "
                           f"{orders * len(STAGES)} and {orders * (DELIVERIES_PER_ORDER - 1)}")
    seconds = finished - started
    return {"floor_orders_per_s": orders / seconds, "floor_seconds": seconds}


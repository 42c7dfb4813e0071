"""statements.json: SQL statements and deliveries per order, every handler in ONE process.

N orders are placed through ``POST /api/orders/`` (Django's test client: the real view and
services) and then every message they cause is delivered in this process, the way a worker
delivers it: the real outbox rows, read in the order they were written, each copied to every
queue the topology routes it to, and handed to ``messaging.consumer.deliver_together`` (the
worker's own entry point: one transaction, the inbox insert, the handlers, batch handlers
where a type has one). ``SIM_TIME_SCALE=0`` makes every timer due at once; a timer not due yet
(the shop's payment deadline) is not delivered, and one cancelled before it was due is gone,
as on the production road. The simulated actors (picking, drivers) are on, so every order
reaches ``delivered``.

Two ways of delivering, both counted:

* ``together``: the messages that wait on a queue, of one type, handed over up to
  ``CONSUMER_TRANSACTION_BATCH`` at a time (a busy worker's batches);
* ``alone``: one message per transaction (an idle worker).

Statements are counted with Django's ``CaptureQueriesContext`` (every SQL statement the
connection ran, savepoints included; BEGIN/COMMIT are not statements Django logs). Reported:
statements per order in total, for the web's placement, and by queue and message type; and
deliveries (messages handled by a consumer) per order.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict

from bench.common import database_reset, write_result

ORDERS = 20
REPEATS = 1


def _pending_due():
    from django.utils import timezone

    from messaging.models import OutboxMessage

    return list(OutboxMessage.objects.filter(published_at__isnull=True, next_attempt_at__lte=timezone.now())
                .order_by("id"))


def _messages_of(rows) -> dict[str, list]:
    """What the broker would put on each queue for these rows, in the order they were written."""
    from messaging import topology
    from messaging.envelope import Message

    by_queue: dict[str, list[Message]] = defaultdict(list)
    for row in rows:
        if row.exchange == topology.EVENTS_EXCHANGE:
            queues = topology.EVENT_SUBSCRIPTIONS.get(row.type, ())
        else:
            queues = (row.queue,)
        for queue in queues:
            by_queue[queue].append(Message(
                queue=queue, message_id=str(row.message_id), type=row.type, correlation_id=row.correlation_id,
                causation_id=row.causation_id, payload=row.payload, producer=row.producer,
                created_at=row.created_at.replace(microsecond=0),
                headers={"traceparent": row.traceparent} if row.traceparent else {}))
    return by_queue


def orders_drive(*, orders: int, together: bool) -> dict:
    """Place ``orders`` orders and deliver everything they cause; returns the counts."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from rest_framework.test import APIClient

    from messaging.consumer import deliver_together
    from messaging.models import OutboxMessage
    from messaging.registry import route_for
    from shop.models import Order
    from shop.services import customer_create
    from simulation.demo_data import SEED_ORDER

    database_reset()
    call_command("load_demo_data", stock=1_000_000, verbosity=0)
    _, token = customer_create(username="counter", email="counter@example.com")
    client = APIClient(SERVER_NAME="localhost")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD004", "quantity": 1}]

    statements: Counter[str] = Counter()
    deliveries: Counter[str] = Counter()
    transactions = 0
    with CaptureQueriesContext(connection) as placed:
        order_ids = []
        for _ in range(orders):
            response = client.post("/api/orders/", body, format="json")
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code}: {response.content[:200]!r}")
            order_ids.append(response.json()["order_id"])
    statements["web: POST /api/orders/"] = len(placed.captured_queries)

    batch = settings.MESSAGING["TRANSACTION_BATCH"] if together else 1
    while rows := _pending_due():
        OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).update(published_at=timezone.now())
        for queue, messages in _messages_of(rows).items():
            route = route_for(queue)
            by_type: dict[str, list] = defaultdict(list)
            for message in messages:
                by_type[message.type].append(message)
            for type_, of_type in by_type.items():
                for start in range(0, len(of_type), batch):
                    chunk = of_type[start:start + batch]
                    with CaptureQueriesContext(connection) as handled:
                        deliver_together(route, chunk)
                    statements[f"{queue}: {type_}"] += len(handled.captured_queries)
                    deliveries[f"{queue}: {type_}"] += len(chunk)
                    transactions += 1
    delivered = Order.objects.filter(pk__in=order_ids, status="delivered").count()
    if delivered != orders:
        raise RuntimeError(f"{delivered} of {orders} orders delivered")
    total = sum(statements.values())
    return {
        "statements_per_order": round(total / orders, 1),
        "handler_statements_per_order": round((total - statements["web: POST /api/orders/"]) / orders, 1),
        "deliveries_per_order": round(sum(deliveries.values()) / orders, 2),
        "transactions_per_order": round(transactions / orders, 2),
        "statements_per_order_by_handler": {
            key: round(count / orders, 2) for key, count in sorted(statements.items(), key=lambda kv: -kv[1])},
        "deliveries_per_order_by_handler": {
            key: round(count / orders, 2) for key, count in sorted(deliveries.items(), key=lambda kv: -kv[1])},
    }


def run(repeats: int = REPEATS) -> dict:
    from django.conf import settings
    from django.test.utils import override_settings

    rates = {**settings.API_THROTTLE_RATES, "orders": "1000000/minute", "user": "1000000/minute"}
    with override_settings(SIM_TIME_SCALE=0.0, SIM_ACTORS=True, API_THROTTLE_RATES=rates,
                           EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
        runs = {mode: orders_drive(orders=ORDERS, together=mode == "together") for mode in ("together", "alone")}
    database_reset()
    figures = {
        "orders": ORDERS,
        "statements_per_order": runs["together"]["statements_per_order"],
        "statements_per_order_alone": runs["alone"]["statements_per_order"],
        "deliveries_per_order": runs["together"]["deliveries_per_order"],
        "targets": {"statements_per_order": "<= 120"},
    }
    write_result("statements", figures, [{"mode": mode, **figures_} for mode, figures_ in runs.items()])
    return figures

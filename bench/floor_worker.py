"""A floor worker: ``consume <queue>`` on the benchmark database with every handler replaced.

Usage: python bench/floor_worker.py <queue>   (runs until SIGTERM, like ``manage.py consume``)

The queue's route keeps its consumer name and its worker is the production one; only the
handlers of this process change, each to a function that writes the next hop's outbox rows
(see bench/floor.py) and nothing else: no payload validation, no business tables.
"""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_database_url  # noqa: E402

# The parent (bench/common.py Processes) hands down the benchmark database already; never the
# project's own, even when started by hand. Migrations are the parent's business.
os.environ["DATABASE_URL"] = bench_database_url()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.floor import CURRENCY, ITEMS, RECIPIENT, SHIPPING_ADDRESS, SHIPPING_METHOD, STAGES, TOTAL, VEHICLE  # noqa: E402
from messaging.envelope import Message  # noqa: E402
from messaging.outbox import outbox_emit, outbox_publish  # noqa: E402
from messaging.registry import Handler, route_for  # noqa: E402
from messaging.topology import (  # noqa: E402
    CUSTOMER_NOTIFICATIONS,
    DELIVERY_UPDATES,
    FULFILMENT_REQUESTS,
    NEW_ORDERS,
    ORDER_CONFIRMATIONS,
    PAYMENT_REQUESTS,
    PAYMENT_RESULTS,
    SHIPPING_ORDERS,
)

_notification_ids = itertools.count(1)  # support's notification row ids, which the floor does not write


def order_confirm(message: Message) -> None:
    """warehouse: every line reserved."""
    order_id = message.payload["order_id"]
    items = [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in message.payload["items"]]
    outbox_publish(type="order.confirmed", correlation_id=order_id, producer="warehouse", payload={
        "order_id": order_id,
        "message": "All items reserved: " + ", ".join(f"{i['quantity']} x {i['product_id']}" for i in items),
        "items": items,
    })


def order_confirmation_note(message: Message) -> None:
    """shop: the order is confirmed; nothing to send."""


def payment_capture(message: Message) -> None:
    """payments: the provider approved the charge."""
    order_id = message.payload["order_id"]
    outbox_emit(queue=PAYMENT_RESULTS, type="payment.captured", correlation_id=order_id, producer="payments", payload={
        "order_id": order_id,
        "payment_id": str(uuid.uuid4()),
        "status": "captured",
        "amount": TOTAL,
        "currency": CURRENCY,
        "reference": f"PAY-{uuid.uuid4().hex[:16].upper()}",
        "reason": "",
    })


def order_pay(message: Message) -> None:
    """shop: paid, handed to the warehouse."""
    order_id = message.payload["order_id"]
    outbox_emit(queue=FULFILMENT_REQUESTS, type="order.paid", correlation_id=order_id, producer="shop",
                payload={"order_id": order_id})


def order_pick(message: Message) -> None:
    """warehouse: picked (instantly at SIM_TIME_SCALE=0), handed to transport."""
    order_id = message.payload["order_id"]
    outbox_emit(queue=SHIPPING_ORDERS, type="shipment.requested", correlation_id=order_id, producer="warehouse",
                payload={
                    "order_id": order_id,
                    "recipient": RECIPIENT,
                    "shipping_address": SHIPPING_ADDRESS,
                    "shipping_method": SHIPPING_METHOD,
                    "items": [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in ITEMS],
                    "picked_at": timezone.now().isoformat(),
                })


def shipment_deliver(message: Message) -> None:
    """transport: a free vehicle plays every stage at once (SIM_TIME_SCALE=0)."""
    order_id = message.payload["order_id"]
    shipment_id = f"SHP-{uuid.uuid4().hex[:20].upper()}"
    for status, text in STAGES:
        outbox_emit(queue=DELIVERY_UPDATES, type="shipment.status_changed", correlation_id=order_id,
                    producer="transport", payload={
                        "order_id": order_id,
                        "shipment_id": shipment_id,
                        "status": status,
                        "message": text,
                        "vehicle_id": VEHICLE,
                        "timestamp": timezone.now().isoformat(),
                    })


def customer_notify(message: Message) -> None:
    """support: tell the customer about the stage."""
    data = message.payload
    outbox_emit(queue=CUSTOMER_NOTIFICATIONS, type="customer.notified", correlation_id=data["order_id"],
                producer="support", payload={
                    "order_id": data["order_id"],
                    "shipment_id": data["shipment_id"],
                    "status": data["status"],
                    "message": data["message"],
                    "timestamp": data["timestamp"],
                    "notification_id": next(_notification_ids),
                })


def order_delivery_note(message: Message) -> None:
    """shop: the order's delivery status; nothing to send."""


FLOOR_HANDLERS: dict[str, dict[str, Handler]] = {
    NEW_ORDERS: {"order.placed": order_confirm},
    ORDER_CONFIRMATIONS: {"order.confirmed": order_confirmation_note},
    PAYMENT_REQUESTS: {"order.confirmed": payment_capture},
    PAYMENT_RESULTS: {"payment.captured": order_pay},
    FULFILMENT_REQUESTS: {"order.paid": order_pick},
    SHIPPING_ORDERS: {"shipment.requested": shipment_deliver},
    DELIVERY_UPDATES: {"shipment.status_changed": customer_notify},
    CUSTOMER_NOTIFICATIONS: {"customer.notified": order_delivery_note},
}


def floor_handlers_install(queue: str) -> None:
    """Replace the queue's handlers in this process. A type outside the pipeline's flow has no
    handler left, so such a message would be parked (and the floor run fails), never handled
    by business code."""
    route = route_for(queue)
    floor = FLOOR_HANDLERS.get(queue, {})
    missing = sorted(set(floor) - set(route.handlers))
    if missing:
        raise SystemExit(f"{queue} has no production handler for {', '.join(missing)}: the floor is out of date")
    route.handlers.clear()
    route.handlers.update(floor)


def main() -> int:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    queue = sys.argv[1]
    floor_handlers_install(queue)
    call_command("consume", queue)
    return 0


if __name__ == "__main__":
    sys.exit(main())

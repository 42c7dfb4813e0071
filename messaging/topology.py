"""The RabbitMQ topology: every exchange and queue the system uses, declared in one place.

Two ways a message travels:

* **point-to-point**: to the direct exchange ``logistics`` with the queue's name as routing
  key -- exactly one queue (one consuming service) gets it;
* **publish-subscribe**: to the topic exchange ``logistics.events`` with the event type as
  routing key -- every queue bound to that type (``EVENT_SUBSCRIPTIONS``) gets its own copy.

The relay publishes with ``mandatory``, so a message no queue would receive is reported,
not dropped. For each work queue ``Q`` (durable, messages persistent):

* ``Q`` is bound to ``logistics`` with routing key ``Q``, and to ``logistics.events`` with
  each event type it subscribes to.
* ``Q.retry.N`` (N = 1, 2, ...) hold a transiently failed message for RETRY_DELAYS[N-1]
  seconds (queue TTL) and then dead-letter it back to ``logistics``/``Q``: delayed retry
  with no broker plugin.
* ``Q.dlq`` is bound to ``logistics.dlx``; ``Q`` dead-letters there, which is where a
  message goes when a consumer rejects it and cannot even record it in the database.
"""

from __future__ import annotations

from django.conf import settings

NEW_ORDERS = "new_orders"
ORDER_CONFIRMATIONS = "order_confirmations"
SHIPPING_ORDERS = "shipping_orders"
DELIVERY_UPDATES = "delivery_updates"
CUSTOMER_NOTIFICATIONS = "customer_notifications"
PAYMENT_REQUESTS = "payment_requests"
PAYMENT_RESULTS = "payment_results"
FULFILMENT_REQUESTS = "fulfilment_requests"
SUPPORT_REQUESTS = "support_requests"

WORK_QUEUES: tuple[str, ...] = (
    NEW_ORDERS,
    ORDER_CONFIRMATIONS,
    SHIPPING_ORDERS,
    DELIVERY_UPDATES,
    CUSTOMER_NOTIFICATIONS,
    PAYMENT_REQUESTS,
    PAYMENT_RESULTS,
    FULFILMENT_REQUESTS,
    SUPPORT_REQUESTS,
)

EVENTS_EXCHANGE = "logistics.events"

# Publish-subscribe: which queues receive a copy of each event published to logistics.events.
EVENT_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    # a new order: the warehouse reserves it, customer service keeps the customer's contact
    "order.placed": (NEW_ORDERS, SUPPORT_REQUESTS),
    # the warehouse's answer, for the shop (which then asks payments to charge the order)
    "order.confirmed": (ORDER_CONFIRMATIONS,),
    "order.rejected": (ORDER_CONFIRMATIONS,),
    # the shop's compensations: stock goes back, the payment is voided or refunded,
    # customer service tells the customer
    "order.cancelled": (FULFILMENT_REQUESTS, PAYMENT_REQUESTS, SUPPORT_REQUESTS),
    "order.payment_failed": (FULFILMENT_REQUESTS, PAYMENT_REQUESTS, SUPPORT_REQUESTS),
    # transport's stages: customer service keeps the tracking history (and a driver's app, or
    # the demo's simulated drivers, may follow them too)
    "shipment.status_changed": (DELIVERY_UPDATES,),
    # the warehouse started picking an order: for whoever does the picking (no product queue
    # needs it; an event no queue subscribes to is not written at all)
    "picking.started": (),
}

# Events no version publishes any more: their bindings go too.
RETIRED_EVENTS: tuple[str, ...] = ()

# Queues added at start-up by an app that is not part of the product's flow (the demo's
# simulated actors): ``queue_add()``.
_extra_queues: list[str] = []


def queue_add(queue: str, *, subscriptions: tuple[str, ...] = ()) -> None:
    """Add a work queue (declared, bound and consumed like the product's) subscribed to ``subscriptions``.

    Called from an AppConfig's ``ready()``, so that every process (relay, workers,
    ``setup_broker``) sees the same topology.
    """
    if queue not in WORK_QUEUES and queue not in _extra_queues:
        _extra_queues.append(queue)
    for event in subscriptions:
        if event not in EVENT_SUBSCRIPTIONS:
            raise ValueError(f"unknown event {event!r}")
        if queue not in EVENT_SUBSCRIPTIONS[event]:
            EVENT_SUBSCRIPTIONS[event] = (*EVENT_SUBSCRIPTIONS[event], queue)


def work_queues() -> tuple[str, ...]:
    """Every work queue: the product's and those added with ``queue_add()``."""
    return (*WORK_QUEUES, *_extra_queues)


def exchange() -> str:
    return settings.MESSAGING["EXCHANGE"]


def dead_letter_exchange() -> str:
    return settings.MESSAGING["DEAD_LETTER_EXCHANGE"]


def retry_delays() -> tuple[int, ...]:
    return tuple(settings.MESSAGING["RETRY_DELAYS"])


def retry_queue(queue: str, attempt: int) -> str:
    return f"{queue}.retry.{attempt}"


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


def subscriptions_of(queue: str) -> list[str]:
    return sorted(event for event, queues in EVENT_SUBSCRIPTIONS.items() if queue in queues)


def declare(channel) -> None:
    """Declare every exchange, queue and binding. Idempotent; safe from any process."""
    channel.exchange_declare(exchange=exchange(), exchange_type="direct", durable=True)
    channel.exchange_declare(exchange=EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(exchange=dead_letter_exchange(), exchange_type="direct", durable=True)
    for queue in work_queues():
        channel.queue_declare(
            queue=queue,
            durable=True,
            arguments={
                "x-dead-letter-exchange": dead_letter_exchange(),
                "x-dead-letter-routing-key": queue,
            },
        )
        channel.queue_bind(queue=queue, exchange=exchange(), routing_key=queue)
        for event in subscriptions_of(queue):
            channel.queue_bind(queue=queue, exchange=EVENTS_EXCHANGE, routing_key=event)
        # A subscription an earlier version had and this one dropped (payments heard
        # order.confirmed until the shop sent it payment.requested) would deliver messages
        # nobody handles here: unbind it (unbinding what is not bound changes nothing).
        for event in sorted(set(EVENT_SUBSCRIPTIONS) | set(RETIRED_EVENTS)):
            if queue not in EVENT_SUBSCRIPTIONS.get(event, ()):
                channel.queue_unbind(queue=queue, exchange=EVENTS_EXCHANGE, routing_key=event)
        dlq = dead_letter_queue(queue)
        channel.queue_declare(queue=dlq, durable=True)
        channel.queue_bind(queue=dlq, exchange=dead_letter_exchange(), routing_key=queue)
        for attempt, delay in enumerate(retry_delays(), start=1):
            channel.queue_declare(
                queue=retry_queue(queue, attempt),
                durable=True,
                arguments={
                    "x-message-ttl": int(delay * 1000),
                    "x-dead-letter-exchange": exchange(),
                    "x-dead-letter-routing-key": queue,
                },
            )


def all_queue_names() -> list[str]:
    names: list[str] = []
    for queue in work_queues():
        names.append(queue)
        names.append(dead_letter_queue(queue))
        names.extend(retry_queue(queue, n) for n in range(1, len(retry_delays()) + 1))
    return names

"""The RabbitMQ topology: every exchange and queue the system uses, declared in one place.

Two ways a message travels:

* **point-to-point**: to the direct exchange ``logistics`` with the queue's name as routing
  key -- exactly one queue (one consuming service) gets it;
* **publish-subscribe**: to the topic exchange ``logistics.events`` with the event type as
  routing key -- every queue bound to that type (``EVENT_SUBSCRIPTIONS``) gets its own copy.

The relay publishes with ``mandatory``, so a message no queue would receive is reported,
not dropped. Every queue is a quorum queue (replicated by Raft on every node of a RabbitMQ
cluster; on a single node, one copy), with a delivery limit. For each work queue ``Q`` (durable,
messages persistent):

* ``Q`` is bound to ``logistics`` with routing key ``Q``, and to ``logistics.events`` with
  each event type it subscribes to.
* ``Q.retry.N`` (N = 1, 2, ...) hold a transiently failed message for RETRY_DELAYS[N-1]
  seconds (queue TTL) and then dead-letter it back to ``logistics``/``Q``: delayed retry
  with no broker plugin.
* ``Q.dlq`` is bound to ``logistics.dlx``; ``Q`` dead-letters there, which is where a
  message goes when a consumer rejects it and cannot even record it in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pika
from django.conf import settings

logger = logging.getLogger("messaging.topology")

PRECONDITION_FAILED = 406  # AMQP reply code: declared with other arguments
NOT_FOUND = 404

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
    # the warehouse's answer, for the shop (which then asks payments to charge the order);
    # a rejection is also told to the customer by customer service
    "order.confirmed": (ORDER_CONFIRMATIONS,),
    "order.rejected": (ORDER_CONFIRMATIONS, SUPPORT_REQUESTS),
    # the shop's compensations: stock goes back, the payment is voided or refunded,
    # customer service tells the customer
    "order.cancelled": (FULFILMENT_REQUESTS, PAYMENT_REQUESTS, SUPPORT_REQUESTS),
    "order.payment_failed": (FULFILMENT_REQUESTS, PAYMENT_REQUESTS, SUPPORT_REQUESTS),
    # transport's stages: customer service keeps the tracking history (and a driver's app, or
    # the demo's simulated drivers, may follow them too)
    "shipment.status_changed": (DELIVERY_UPDATES,),
    # the warehouse started picking an order (it is paid): for whoever does the picking, and
    # for customer service, which tells the customer that the order is paid and confirmed
    "picking.started": (SUPPORT_REQUESTS,),
    # a person changed a product's stock (its history is the warehouse's StockAdjustment): for
    # whoever follows the stock (no product queue yet)
    "stock.adjusted": (),
}

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


def _quorum(**arguments) -> dict:
    """A quorum queue's arguments: replicated on every node of the cluster (one on a single node).

    ``x-delivery-limit``: a message returned to the queue more often than that (a worker that
    dies while holding it, again and again) is dead-lettered instead of crashing workers for
    ever. Dead-lettering is at-least-once (RabbitMQ 3.10; it needs ``reject-publish``), so a
    message expiring from a retry queue cannot be lost on its way back to its work queue.
    """
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": settings.MESSAGING["DELIVERY_LIMIT"],
        "x-overflow": "reject-publish",
        **({"x-dead-letter-strategy": "at-least-once"} if "x-dead-letter-exchange" in arguments else {}),
        **arguments,
    }


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key)


def queue_specs() -> list[QueueSpec]:
    """Every queue: each work queue, then its dead-letter queue and its retry queues."""
    specs = []
    for queue in work_queues():
        specs.append(QueueSpec(
            name=queue,
            arguments=_quorum(**{"x-dead-letter-exchange": dead_letter_exchange(), "x-dead-letter-routing-key": queue}),
            bindings=((exchange(), queue), *((EVENTS_EXCHANGE, event) for event in subscriptions_of(queue))),
        ))
        specs.append(QueueSpec(name=dead_letter_queue(queue), arguments=_quorum(),
                               bindings=((dead_letter_exchange(), queue),)))
        for attempt, delay in enumerate(retry_delays(), start=1):
            specs.append(QueueSpec(
                name=retry_queue(queue, attempt),
                arguments=_quorum(**{"x-message-ttl": int(delay * 1000), "x-dead-letter-exchange": exchange(),
                                     "x-dead-letter-routing-key": queue}),
                bindings=(),  # published to through the default exchange
            ))
    return specs


class QueueOutdated(pika.exceptions.AMQPChannelError):
    """A queue exists with other arguments (a classic queue of an earlier version): it must be
    migrated (``manage.py setup_broker --migrate``) before it can be used."""

    def __init__(self, queue: str, reply_text: str) -> None:
        super().__init__(queue, reply_text)
        self.queue = queue
        self.reply_text = reply_text

    def __str__(self) -> str:
        return (f"queue {self.queue!r} exists with other arguments ({self.reply_text}); it is probably a classic "
                "queue of an earlier version. Move it to a quorum queue, its messages kept: stop the workers "
                "(python manage.py consume ...), run `python manage.py setup_broker --migrate`, start them again.")


def _exchanges_declare(channel) -> None:
    channel.exchange_declare(exchange=exchange(), exchange_type="direct", durable=True)
    channel.exchange_declare(exchange=EVENTS_EXCHANGE, exchange_type="topic", durable=True)
    channel.exchange_declare(exchange=dead_letter_exchange(), exchange_type="direct", durable=True)


def _queue_declare(channel, spec: QueueSpec) -> None:
    try:
        channel.queue_declare(queue=spec.name, durable=True, arguments=spec.arguments)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == PRECONDITION_FAILED:
            raise QueueOutdated(spec.name, exc.reply_text) from exc
        raise
    for source, routing_key in spec.bindings:
        channel.queue_bind(queue=spec.name, exchange=source, routing_key=routing_key)
    if spec.name in work_queues():
        # A subscription an earlier version had and this one dropped (payments heard
        # order.confirmed until the shop sent it payment.requested) would deliver messages
        # nobody handles here: unbind it (unbinding what is not bound changes nothing).
        for event in sorted(EVENT_SUBSCRIPTIONS):
            if spec.name not in EVENT_SUBSCRIPTIONS.get(event, ()):
                channel.queue_unbind(queue=spec.name, exchange=EVENTS_EXCHANGE, routing_key=event)


def declare(channel) -> None:
    """Declare every exchange, queue and binding. Idempotent; safe from any process.

    Raises ``QueueOutdated`` (and the broker closes the channel) when a queue exists with other
    arguments: ``migrate()`` moves such a queue, messages and all.
    """
    _exchanges_declare(channel)
    for spec in queue_specs():
        _queue_declare(channel, spec)


# -- upgrade in place ---------------------------------------------------------------------------
def holding_queue(queue: str) -> str:
    return f"{queue}.migrating"


def migrate(connection, *, log: Callable[[str], None] = logger.info) -> dict[str, int]:
    """Declare the topology, moving each queue that exists with other arguments (the classic
    queues of earlier versions) to a queue declared as it should be. Returns {queue: messages
    moved} of the queues moved.

    For each such queue ``Q``: a quorum queue ``Q.migrating`` takes ``Q``'s bindings, so what is
    published meanwhile lands there; ``Q`` is unbound and its messages moved there (each one
    published with publisher confirms, then acknowledged on ``Q``: none is ever in neither queue);
    ``Q`` is deleted (only when empty and without consumers: a worker's unacknowledged messages
    would go with it) and declared anew; ``Q.migrating``'s messages move back and it is deleted.
    Interrupted, it can be run again: a holding queue left behind is emptied into its queue.
    """
    channel = connection.channel()
    _exchanges_declare(channel)
    channel.close()
    moved: dict[str, int] = {}
    for spec in queue_specs():
        channel = connection.channel()
        try:
            _queue_declare(channel, spec)
        except QueueOutdated as exc:
            log(f"{spec.name}: {exc.reply_text}; moving it to a new queue")
            moved[spec.name] = _queue_recreate(connection, spec)
            log(f"{spec.name}: declared anew, {moved[spec.name]} messages moved")
        else:
            left = _holding_drain(connection, spec.name)
            if left:
                moved[spec.name] = left
                log(f"{spec.name}: {left} messages of an interrupted migration moved back")
        finally:
            if channel.is_open:
                channel.close()
    return moved


def _queue_recreate(connection, spec: QueueSpec) -> int:
    channel = connection.channel()
    found = channel.queue_declare(queue=spec.name, passive=True)
    if found.method.consumer_count:
        raise QueueInUse(spec.name, found.method.consumer_count)
    holding = holding_queue(spec.name)
    channel.queue_declare(queue=holding, durable=True, arguments={"x-queue-type": "quorum"})
    for source, routing_key in spec.bindings:
        channel.queue_bind(queue=holding, exchange=source, routing_key=routing_key)
        channel.queue_unbind(queue=spec.name, exchange=source, routing_key=routing_key)
    moved = _messages_move(channel, source=spec.name, target=holding)
    _queue_delete_idle(channel, spec.name)
    _queue_declare(channel, spec)
    channel.close()
    _holding_drain(connection, spec.name)  # what was moved, and what was published meanwhile
    return moved


def _holding_drain(connection, queue: str) -> int:
    """Move what a holding queue of ``queue`` holds into it and delete it; how many were moved."""
    holding = holding_queue(queue)
    channel = connection.channel()
    quiet = logging.getLogger("pika.channel")
    level, quiet.level = quiet.level, logging.ERROR  # "no queue 'Q.migrating'" is the usual answer
    try:
        channel.queue_declare(queue=holding, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            return 0
        raise
    finally:
        quiet.setLevel(level)
    for source, routing_key in next(s for s in queue_specs() if s.name == queue).bindings:
        channel.queue_unbind(queue=holding, exchange=source, routing_key=routing_key)
    moved = _messages_move(channel, source=holding, target=queue)
    _queue_delete_idle(channel, holding)
    channel.close()
    return moved


def _queue_delete_idle(channel, queue: str) -> None:
    """Delete ``queue``, found empty and without consumers just before. (Quorum queues refuse
    the ``if_empty``/``if_unused`` flags of queue.delete, so they are checked here.)"""
    found = channel.queue_declare(queue=queue, passive=True).method
    if found.consumer_count:
        raise QueueInUse(queue, found.consumer_count)
    if found.message_count:
        raise QueueNotEmpty(queue, found.message_count)
    channel.queue_delete(queue=queue)


def _messages_move(channel, *, source: str, target: str) -> int:
    """Every message of ``source`` to ``target`` (properties and headers as they were), each
    confirmed by the broker before it is acknowledged on ``source``."""
    channel.confirm_delivery()
    moved = 0
    while True:
        method, properties, body = channel.basic_get(queue=source, auto_ack=False)
        if method is None:
            return moved
        channel.basic_publish(exchange="", routing_key=target, body=body, properties=properties, mandatory=True)
        channel.basic_ack(method.delivery_tag)
        moved += 1


class QueueNotEmpty(pika.exceptions.AMQPChannelError):
    def __init__(self, queue: str, messages: int) -> None:
        super().__init__(queue, messages)
        self.queue, self.messages = queue, messages

    def __str__(self) -> str:
        return (f"queue {self.queue!r} still has {self.messages} message(s) after they were moved: something "
                "publishes to it directly; stop it and run the migration again (nothing was deleted)")


class QueueInUse(pika.exceptions.AMQPChannelError):
    def __init__(self, queue: str, consumers: int) -> None:
        super().__init__(queue, consumers)
        self.queue, self.consumers = queue, consumers

    def __str__(self) -> str:
        return (f"queue {self.queue!r} must be moved but has {self.consumers} consumer(s): stop its workers "
                "first (their unacknowledged messages would go with the old queue), then run the migration again")


def all_queue_names() -> list[str]:
    names: list[str] = []
    for queue in work_queues():
        names.append(queue)
        names.append(dead_letter_queue(queue))
        names.extend(retry_queue(queue, n) for n in range(1, len(retry_delays()) + 1))
    return names

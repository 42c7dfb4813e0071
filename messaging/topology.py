"""The RabbitMQ topology: every exchange and queue the system uses, declared in one place.

For each work queue ``Q`` (durable, messages persistent):

* ``Q`` is bound to the direct exchange ``logistics`` with routing key ``Q``; the relay
  publishes there with ``mandatory`` so an unbound destination is reported, not dropped.
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

WORK_QUEUES: tuple[str, ...] = (
    NEW_ORDERS,
    ORDER_CONFIRMATIONS,
    SHIPPING_ORDERS,
    DELIVERY_UPDATES,
    CUSTOMER_NOTIFICATIONS,
)


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


def declare(channel) -> None:
    """Declare every exchange, queue and binding. Idempotent; safe from any process."""
    channel.exchange_declare(exchange=exchange(), exchange_type="direct", durable=True)
    channel.exchange_declare(exchange=dead_letter_exchange(), exchange_type="direct", durable=True)
    for queue in WORK_QUEUES:
        channel.queue_declare(
            queue=queue,
            durable=True,
            arguments={
                "x-dead-letter-exchange": dead_letter_exchange(),
                "x-dead-letter-routing-key": queue,
            },
        )
        channel.queue_bind(queue=queue, exchange=exchange(), routing_key=queue)
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
    for queue in WORK_QUEUES:
        names.append(queue)
        names.append(dead_letter_queue(queue))
        names.extend(retry_queue(queue, n) for n in range(1, len(retry_delays()) + 1))
    return names

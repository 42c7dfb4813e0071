"""Messages the shop reacts to: the warehouse's answer, payments' answers and the shop's own
payment deadlines, and what customer service told the customer about the delivery."""

from __future__ import annotations

from contracts.messages import CustomerNotified, OrderConfirmed, OrderRejected, PaymentDeadlineDue, PaymentResult
from messaging.envelope import Message
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import CUSTOMER_NOTIFICATIONS, ORDER_CONFIRMATIONS, PAYMENT_RESULTS
from shop import services

CONSUMER_CONFIRMATIONS = "shop.order_confirmations"
CONSUMER_NOTIFICATIONS = "shop.customer_notifications"
CONSUMER_PAYMENTS = "shop.payment_results"


@message_handler(ORDER_CONFIRMATIONS, OrderConfirmed, consumer=CONSUMER_CONFIRMATIONS)
def on_order_confirmed(data: OrderConfirmed, message: Message) -> None:
    services.order_confirmation_apply(order_id=data.order_id, confirmed=True, message=data.message)


@message_handler(ORDER_CONFIRMATIONS, OrderRejected, consumer=CONSUMER_CONFIRMATIONS)
def on_order_rejected(data: OrderRejected, message: Message) -> None:
    services.order_confirmation_apply(order_id=data.order_id, confirmed=False, message=data.message)


@message_batch_handler(CUSTOMER_NOTIFICATIONS, CustomerNotified, consumer=CONSUMER_NOTIFICATIONS)
def on_customer_notified(batch: MessageBatch[CustomerNotified]) -> None:
    """The delivery updates a worker holds: their orders locked in one statement in primary-key
    order (the global lock order), then each applied in its turn."""
    orders = services.orders_lock(order_ids=[data.order_id for data in batch.payloads])
    for data, _message in batch.each():
        services.order_delivery_update_apply(
            order_id=data.order_id, shipment_id=data.shipment_id, status=data.status,
            message=data.message, timestamp=data.timestamp, locked=orders.get(data.order_id),
        )


@message_handler(PAYMENT_RESULTS, PaymentResult, consumer=CONSUMER_PAYMENTS)
def on_payment_result(data: PaymentResult, message: Message) -> None:
    services.order_payment_result_apply(order_id=data.order_id, status=data.status,
                                        reference=data.reference, reason=data.reason)


@message_handler(PAYMENT_RESULTS, PaymentDeadlineDue, consumer=CONSUMER_PAYMENTS)
def on_payment_deadline_due(data: PaymentDeadlineDue, message: Message) -> None:
    services.order_payment_timeout(order_id=data.order_id, request_number=data.request_number)

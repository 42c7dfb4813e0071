"""Messages payments reacts to: the shop's payment requests, the provider's answers (timers),
and the shop's compensations."""

from __future__ import annotations

from contracts.messages import OrderCancelled, OrderPaymentFailed, PaymentChargeDue, PaymentRequested
from messaging.envelope import Message
from messaging.payloads import payload_validated
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import PAYMENT_REQUESTS
from payments import services

CONSUMER = "payments.payment_requests"


@message_handler(PAYMENT_REQUESTS, PaymentRequested.TYPE, consumer=CONSUMER)
def on_payment_requested(message: Message) -> None:
    data = payload_validated(PaymentRequested, message)
    services.payment_request(order_id=data.order_id, amount=data.amount, currency=data.currency, method=data.method)


@message_batch_handler(PAYMENT_REQUESTS, PaymentChargeDue.TYPE, consumer=CONSUMER)
def on_charge_due(batch: MessageBatch) -> None:
    """The provider's answers due together: their payments locked in one statement, then each charged."""
    payment_ids = {message.message_id: payload_validated(PaymentChargeDue, message).payment_id for message in batch}
    payments = services.payments_to_charge(payment_ids.values())
    for message in batch.each():
        services.payment_charge_locked(payments.get(payment_ids[message.message_id]))


@message_handler(PAYMENT_REQUESTS, OrderCancelled.TYPE, consumer=CONSUMER)
def on_order_cancelled(message: Message) -> None:
    data = payload_validated(OrderCancelled, message)
    services.payment_compensate(order_id=data.order_id, reason=data.message or "order cancelled")


@message_handler(PAYMENT_REQUESTS, OrderPaymentFailed.TYPE, consumer=CONSUMER)
def on_order_payment_failed(message: Message) -> None:
    data = payload_validated(OrderPaymentFailed, message)
    services.payment_compensate(order_id=data.order_id, reason=data.message or "payment failed")

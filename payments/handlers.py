"""Messages payments reacts to: the shop's payment requests, the provider's answers (timers),
and the shop's compensations."""

from __future__ import annotations

from contracts.messages import OrderCancelled, OrderPaymentFailed, PaymentChargeDue, PaymentRequested
from messaging.envelope import Message
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import PAYMENT_REQUESTS
from payments import services

CONSUMER = "payments.payment_requests"


@message_handler(PAYMENT_REQUESTS, PaymentRequested, consumer=CONSUMER)
def on_payment_requested(data: PaymentRequested, message: Message) -> None:
    services.payment_request(order_id=data.order_id, amount=data.amount, currency=data.currency, method=data.method)


@message_batch_handler(PAYMENT_REQUESTS, PaymentChargeDue, consumer=CONSUMER)
def on_charge_due(batch: MessageBatch[PaymentChargeDue]) -> None:
    """The provider's answers due together: their payments locked in one statement, then each charged."""
    payments = services.payments_to_charge([data.payment_id for data in batch.payloads])
    for data, _message in batch.each():
        services.payment_charge_locked(payments.get(data.payment_id))


@message_handler(PAYMENT_REQUESTS, OrderCancelled, consumer=CONSUMER)
def on_order_cancelled(data: OrderCancelled, message: Message) -> None:
    services.payment_compensate(order_id=data.order_id, reason=data.message or "order cancelled")


@message_handler(PAYMENT_REQUESTS, OrderPaymentFailed, consumer=CONSUMER)
def on_order_payment_failed(data: OrderPaymentFailed, message: Message) -> None:
    services.payment_compensate(order_id=data.order_id, reason=data.message or "payment failed")

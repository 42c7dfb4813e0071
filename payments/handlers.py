"""Messages payments reacts to: the shop's payment requests, the provider's answers (timers),
and the shop's compensations.

Those that need the payment provider (a charge, a refund, a void) ask it in the batch
handler's ``prepare``, which the worker runs before its transaction opens (no lock held while
the provider answers); the handler records the answers in the worker's transaction.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from contracts.messages import OrderCancelled, OrderPaymentFailed, PaymentChargeDue, PaymentRequested
from messaging.envelope import Message
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import PAYMENT_REQUESTS
from payments import services

CONSUMER = "payments.payment_requests"

# either message that asks to give back an order's payment (a batch holds one kind of them)
Compensated = TypeVar("Compensated", OrderCancelled, OrderPaymentFailed)


@message_handler(PAYMENT_REQUESTS, PaymentRequested, consumer=CONSUMER)
def on_payment_requested(data: PaymentRequested, message: Message) -> None:
    services.payment_request(order_id=data.order_id, amount=data.amount, currency=data.currency, method=data.method)


def charges_ask(batch: MessageBatch[PaymentChargeDue]) -> dict[UUID, services.ProviderCall]:
    """Outside the worker's transaction: the provider asked to charge the batch's payments at once."""
    return services.payment_charges_ask(data.payment_id for data in batch.payloads)


@message_batch_handler(PAYMENT_REQUESTS, PaymentChargeDue, consumer=CONSUMER, prepare=charges_ask)
def on_charge_due(batch: MessageBatch[PaymentChargeDue]) -> None:
    """The provider's answers (``charges_ask``): their payments locked in one statement, each recorded."""
    payments = services.payments_to_charge([data.payment_id for data in batch.payloads])
    calls = batch.prepared or {}
    for data, _message in batch.each():
        services.payment_charge_record(payments.get(data.payment_id), calls.get(data.payment_id))


def compensations_ask(batch: MessageBatch[OrderCancelled | OrderPaymentFailed]) -> dict[str, services.ProviderCall]:
    """Outside the worker's transaction: the provider asked to refund or void each order's payment."""
    return {message.message_id: services.payment_compensation_ask(order_id=data.order_id)
            for data, message in batch.pairs}


def on_compensation(batch: MessageBatch[Compensated], default_reason: str) -> None:
    calls = batch.prepared or {}
    for data, message in batch.each():
        services.payment_compensation_record(order_id=data.order_id, reason=data.message or default_reason,
                                             call=calls.get(message.message_id))


@message_batch_handler(PAYMENT_REQUESTS, OrderCancelled, consumer=CONSUMER, prepare=compensations_ask)
def on_order_cancelled(batch: MessageBatch[OrderCancelled]) -> None:
    on_compensation(batch, "order cancelled")


@message_batch_handler(PAYMENT_REQUESTS, OrderPaymentFailed, consumer=CONSUMER, prepare=compensations_ask)
def on_order_payment_failed(batch: MessageBatch[OrderPaymentFailed]) -> None:
    on_compensation(batch, "payment failed")

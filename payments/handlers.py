"""Messages payments reacts to: the shop's payment requests, the provider's answers (timers),
and the shop's compensations.

Those that need the payment provider (a charge, a refund, a void) ask it in the batch
handler's ``prepare``, which the worker runs before its transaction opens (no lock held while
the provider answers); the handler records the answers in the worker's transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

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


def charges_ask(batch: MessageBatch) -> dict[UUID, services.ProviderCall]:
    """Outside the worker's transaction: the provider asked to charge the batch's payments at once."""
    return services.payment_charges_ask(payload_validated(PaymentChargeDue, message).payment_id for message in batch)


@message_batch_handler(PAYMENT_REQUESTS, PaymentChargeDue.TYPE, consumer=CONSUMER, prepare=charges_ask)
def on_charge_due(batch: MessageBatch) -> None:
    """The provider's answers (``charges_ask``): their payments locked in one statement, each recorded."""
    payment_ids = {message.message_id: payload_validated(PaymentChargeDue, message).payment_id for message in batch}
    payments = services.payments_to_charge(payment_ids.values())
    calls = batch.prepared or {}
    for message in batch.each():
        payment_id = payment_ids[message.message_id]
        services.payment_charge_record(payments.get(payment_id), calls.get(payment_id))


def compensations_ask(batch: MessageBatch) -> dict[str, services.ProviderCall]:
    """Outside the worker's transaction: the provider asked to refund or void each order's payment."""
    return {message.message_id: services.payment_compensation_ask(order_id=_compensation(message).order_id)
            for message in batch}


def on_compensation(batch: MessageBatch, default_reason: str) -> None:
    calls = batch.prepared or {}
    for message in batch.each():
        data = _compensation(message)
        services.payment_compensation_record(order_id=data.order_id, reason=data.message or default_reason,
                                             call=calls.get(message.message_id))


@message_batch_handler(PAYMENT_REQUESTS, OrderCancelled.TYPE, consumer=CONSUMER, prepare=compensations_ask)
def on_order_cancelled(batch: MessageBatch) -> None:
    on_compensation(batch, "order cancelled")


@message_batch_handler(PAYMENT_REQUESTS, OrderPaymentFailed.TYPE, consumer=CONSUMER, prepare=compensations_ask)
def on_order_payment_failed(batch: MessageBatch) -> None:
    on_compensation(batch, "payment failed")


def _compensation(message: Message) -> Any:
    contract = OrderCancelled if message.type == OrderCancelled.TYPE else OrderPaymentFailed
    return payload_validated(contract, message)

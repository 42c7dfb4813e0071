"""Payment writes: charging confirmed orders, voiding and refunding as compensation.

Every function is idempotent per order: a repeated request answers again instead of
charging again, and a repeated cancellation refunds at most once (the payment row is locked
and its status only moves pending -> captured | declined | voided, captured -> refunded).
"""

from __future__ import annotations

from uuid import UUID

from django.utils import timezone

from config.errors import NotFound
from config.rows import row_insert, row_lock, row_update
from config.transactions import service_transaction
from messaging.outbox import outbox_emit
from messaging.timers import timer_cancel, timer_set
from messaging.topology import PAYMENT_REQUESTS, PAYMENT_RESULTS
from payments.models import Payment
from payments.provider import payment_provider
from shop.selectors import order_payment_terms_get

PRODUCER = "payments"
CHARGE_DUE = "payment.charge_due"


def _charge_when_answered(payment: Payment) -> None:
    """The provider's answer to the charge comes after its latency: a timer on payments' own queue."""
    timer_set(queue=PAYMENT_REQUESTS, type=CHARGE_DUE, correlation_id=payment.order_id, producer=PRODUCER,
              payload={"order_id": str(payment.order_id), "payment_id": str(payment.id)},
              after=payment_provider().latency_seconds())


def _payment_lock(order_id: UUID) -> Payment | None:
    return row_lock(Payment, order_id=order_id)


def _new_payment(order_id: UUID, status: str) -> Payment:
    terms = order_payment_terms_get(order_id=order_id)
    if terms is None:
        raise NotFound(f"order {order_id} does not exist", field="order_id")
    return row_insert(Payment(order_id=order_id, amount=terms.total, currency=terms.currency,
                              method=terms.method, status=status, attempts=1))


@service_transaction
def payment_request(*, order_id: UUID) -> Payment:
    """Charge a confirmed order (after the provider's simulated latency); asked again, answer again."""
    payment = _payment_lock(order_id)
    if payment is None:
        payment = _new_payment(order_id, Payment.Status.PENDING)
        _charge_when_answered(payment)
        return payment
    payment.attempts += 1
    row_update(payment, ["attempts", "updated_at"])
    if payment.status == Payment.Status.PENDING:
        # The shop heard nothing back: send the charge to the provider again (idempotency key = payment id).
        _charge_when_answered(payment)
    elif payment.status in (Payment.Status.CAPTURED, Payment.Status.DECLINED):
        _result_emit(payment)
    return payment


@service_transaction
def payment_charge(*, payment_id: UUID | str) -> Payment | None:
    """The provider's answer to a pending payment (its timer is due). Charges once per payment,
    whatever the retries: a late or repeated timer finds the payment no longer pending."""
    payment = row_lock(Payment, pk=payment_id)
    if payment is None or payment.status != Payment.Status.PENDING:
        return payment
    answer = payment_provider().charge(idempotency_key=str(payment.id), amount=payment.amount,
                                       currency=payment.currency, method=payment.method)
    if answer.approved:
        payment.status = Payment.Status.CAPTURED
        payment.provider_reference = answer.reference
        payment.captured_at = timezone.now()
        row_update(payment, ["status", "provider_reference", "captured_at", "updated_at"])
    else:
        payment.status = Payment.Status.DECLINED
        payment.reason = answer.reason
        row_update(payment, ["status", "reason", "updated_at"])
    _result_emit(payment)
    return payment


@service_transaction
def payment_compensate(*, order_id: UUID, reason: str) -> Payment:
    """The order is cancelled or has failed: void a pending payment, refund a captured one (once)."""
    payment = _payment_lock(order_id)
    if payment is None:
        # The cancellation overtook the charge request: leave a voided payment so it never happens.
        payment = _new_payment(order_id, Payment.Status.VOIDED)
        payment.reason = reason
        payment.save(update_fields=["reason"])
        return payment
    if payment.status == Payment.Status.PENDING:
        payment.status = Payment.Status.VOIDED
        payment.reason = reason
        payment.save(update_fields=["status", "reason", "updated_at"])
        timer_cancel(correlation_id=order_id, type=CHARGE_DUE)  # one already on its way finds it voided
    elif payment.status == Payment.Status.CAPTURED:
        answer = payment_provider().refund(idempotency_key=f"refund-{payment.id}", reference=payment.provider_reference,
                                           amount=payment.amount, currency=payment.currency)
        payment.status = Payment.Status.REFUNDED
        payment.refund_reference = answer.reference
        payment.refunded_at = timezone.now()
        payment.reason = reason
        payment.save()
        _result_emit(payment)
    return payment


def _result_emit(payment: Payment) -> None:
    """Caller holds the payment's row lock."""
    outbox_emit(
        queue=PAYMENT_RESULTS, type=f"payment.{payment.status}", correlation_id=payment.order_id, producer=PRODUCER,
        payload={
            "order_id": str(payment.order_id),
            "payment_id": str(payment.id),
            "status": payment.status,
            "amount": str(payment.amount),
            "currency": payment.currency,
            "reference": payment.refund_reference if payment.status == Payment.Status.REFUNDED
            else payment.provider_reference,
            "reason": payment.reason,
        },
    )

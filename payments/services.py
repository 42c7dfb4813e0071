"""Payment writes: charging what the shop asks for, voiding and refunding as compensation.

Payments knows an order only from its messages: the amount, currency and method travel in
``payment.requested``. Every function is idempotent per order: a repeated request answers
again instead of charging again, a late provider answer finds the payment moved on, and a
repeated cancellation refunds at most once. The payment's row lock orders them; its status
only moves as ``Payment.MOVES`` allows (pending -> captured | declined | voided,
captured -> refunded).

Each service owns its transaction (``transaction.atomic``). Called from a message handler it
joins the handler's transaction without a savepoint of its own (``savepoint=False``): the
handler never carries on after an error, the whole transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from contracts.messages import PaymentChargeDue, PaymentResult
from messaging.outbox import outbox_emit
from messaging.timers import timer_cancel, timer_set
from messaging.topology import PAYMENT_REQUESTS, PAYMENT_RESULTS
from payments.locks import payment_for_update, payment_of_order_for_update, payments_for_update
from payments.models import Payment
from payments.provider import payment_provider

PRODUCER = "payments"
CHARGE_DUE = PaymentChargeDue.TYPE


@transaction.atomic(savepoint=False)
def payment_request(*, order_id: UUID, amount: Decimal, currency: str, method: str) -> Payment:
    """The shop asks to charge ``amount`` for the order (its first request, or one after a deadline).

    The request that finds no payment (the first, as a rule) creates it, pending, and asks the provider (its
    answer is a timer). A later one re-asks the provider while the payment is pending, and
    answers again once it is captured or declined. A payment voided before any request
    stays voided: nothing is charged. A request for another amount, currency or method than
    the payment's is refused (DomainError: parked, not charged).
    """
    payment, created = _payment_locked_or_new(
        order_id, amount=amount, currency=currency, method=method, status=Payment.Status.PENDING, attempts=1)
    if created:
        _charge_when_answered(payment)
        return payment
    if payment.amount is not None and (payment.amount, payment.currency, payment.method) != (amount, currency, method):
        # The shop asks again for the same charge, never another: no request of ours explains
        # this one (an edited or forged message). Refused, so the consumer parks it.
        raise DomainError(f"payment.requested for order {order_id} asks {amount} {currency} by {method}, but its "
                          f"payment {payment.id} is for {payment.amount} {payment.currency} by {payment.method}: "
                          f"not charged")
    payment.attempts += 1
    changed = ["attempts", "updated_at"]
    if payment.amount is None:  # voided before this request: keep what was not charged, for the record
        payment.amount, payment.currency, payment.method = amount, currency, method
        changed += ["amount", "currency", "method"]
    payment.save(update_fields=changed)
    if payment.status == Payment.Status.PENDING:
        # The shop heard nothing back: ask the provider again (idempotency key = payment id).
        _charge_when_answered(payment)
    elif payment.status in (Payment.Status.CAPTURED, Payment.Status.DECLINED):
        _result_emit(payment)
    return payment


@transaction.atomic(savepoint=False)
def payment_charge(*, payment_id: UUID) -> Payment | None:
    """The provider's answer to a pending payment (its timer is due). Charges once per payment,
    whatever the retries: a late or repeated timer finds the payment no longer pending."""
    return payment_charge_locked(payment_for_update(payment_id))


def payments_to_charge(payment_ids: Iterable[UUID]) -> dict[UUID, Payment]:
    """The payments of several due answers, locked together (``payment_charge_locked`` each).
    Caller holds the transaction."""
    return payments_for_update(payment_ids)


def payment_charge_locked(payment: Payment | None) -> Payment | None:
    """``payment_charge`` for a payment the caller has locked (None: there is no such payment)."""
    if payment is None or payment.status != Payment.Status.PENDING:
        return payment
    # Its amount is known (only a voided payment lacks one: a check constraint), so are those below.
    answer = payment_provider().charge(idempotency_key=str(payment.id), amount=cast(Decimal, payment.amount),
                                       currency=payment.currency, method=payment.method)
    if answer.approved:
        _payment_move(payment, Payment.Status.CAPTURED, provider_reference=answer.reference,
                      captured_at=timezone.now())
    else:
        _payment_move(payment, Payment.Status.DECLINED, reason=answer.reason)
    _result_emit(payment)
    return payment


@transaction.atomic(savepoint=False)
def payment_compensate(*, order_id: UUID, reason: str) -> Payment:
    """The order is cancelled or has failed: void a pending payment, refund a captured one (once).

    A cancellation that overtakes the first request leaves a voided payment with no amount,
    so that the request, when it comes, charges nothing.
    """
    payment, created = _payment_locked_or_new(order_id, amount=None, status=Payment.Status.VOIDED, reason=reason)
    if created:
        return payment
    if payment.status == Payment.Status.PENDING:
        _payment_move(payment, Payment.Status.VOIDED, reason=reason)
        timer_cancel(correlation_id=order_id, type=CHARGE_DUE)  # one already on its way finds it voided
    elif payment.status == Payment.Status.CAPTURED:
        answer = payment_provider().refund(idempotency_key=f"refund-{payment.id}", reference=payment.provider_reference,
                                           amount=cast(Decimal, payment.amount), currency=payment.currency)
        _payment_move(payment, Payment.Status.REFUNDED, refund_reference=answer.reference,
                      refunded_at=timezone.now(), reason=reason)
        _result_emit(payment)
    return payment


def _payment_locked_or_new(order_id: UUID, **new: Any) -> tuple[Payment, bool]:
    """The order's payment, locked; made from ``new`` when there is none yet (then True).

    Caller holds the transaction. Two workers that make the same order's payment at once:
    the second one's insert waits for the first to commit and then does nothing (ON CONFLICT
    DO NOTHING), and the first one's payment is locked instead.
    """
    payment = payment_of_order_for_update(order_id)
    if payment is not None:
        return payment, False
    made = Payment(order_id=order_id, **new)
    Payment.objects.bulk_create([made], ignore_conflicts=True)
    payment = cast(Payment, payment_of_order_for_update(order_id))  # ours, or the one that won the insert
    return payment, payment.pk == made.pk


def _payment_move(payment: Payment, status: str, **changes: Any) -> None:
    """Move the payment to ``status`` with ``changes``. Caller holds its row lock and has
    checked the move; one that ``Payment.MOVES`` forbids is a bug, never written."""
    if status not in Payment.MOVES.get(payment.status, ()):
        raise RuntimeError(f"payment {payment.pk} cannot move from {payment.status} to {status}")
    payment.status = status
    for field, value in changes.items():
        setattr(payment, field, value)
    payment.save(update_fields=["status", *changes, "updated_at"])


def _charge_when_answered(payment: Payment) -> None:
    """The provider's answer to the charge comes after its latency: a timer on payments' own queue."""
    timer_set(queue=PAYMENT_REQUESTS, type=CHARGE_DUE, correlation_id=payment.order_id, producer=PRODUCER,
              payload=PaymentChargeDue(order_id=payment.order_id, payment_id=payment.id),
              after=payment_provider().latency_seconds())


def _result_emit(payment: Payment) -> None:
    """Tell the shop how the payment stands. Caller holds the payment's row lock."""
    refunded = payment.status == Payment.Status.REFUNDED
    outbox_emit(
        queue=PAYMENT_RESULTS, type=f"payment.{payment.status}", correlation_id=payment.order_id, producer=PRODUCER,
        payload=PaymentResult(
            order_id=payment.order_id,
            payment_id=payment.id,
            status=payment.status,  # type: ignore[arg-type]  # checked by the contract
            amount=cast(Decimal, payment.amount),  # known unless voided, and a voided payment tells nothing
            currency=payment.currency,
            reference=payment.refund_reference if refunded else payment.provider_reference,
            reason=payment.reason,
        ),
    )

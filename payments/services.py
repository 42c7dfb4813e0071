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

The provider is never asked while a payment is locked or a transaction is open: the
``*_ask`` functions record what they ask (a short transaction of their own), ask with an
idempotency key and no transaction open, and return the answers; the ``*_record`` functions
record them later, under the payment's lock, in the worker's transaction
(docs/architecture.md, "The payment provider, outside the lock").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, cast
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from contracts.messages import PaymentChargeDue, PaymentResult
from messaging.faults import fault_point
from messaging.outbox import outbox_emit
from messaging.timers import timer_cancel, timer_set
from messaging.topology import PAYMENT_REQUESTS, PAYMENT_RESULTS
from payments.locks import payment_for_update, payment_of_order_for_update, payments_for_update
from payments.models import Payment
from payments.provider import ProviderAnswer, payment_provider

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


@dataclass(frozen=True)
class ProviderCall:
    """What was asked of the provider for a payment, outside any transaction, and its answer.

    ``status`` and ``charge_attempt``: the payment as it stood when the call was decided; the
    record checks, under the payment's lock, that the answer still applies."""

    status: str
    charge_attempt: int
    answer: ProviderAnswer | None  # None: nothing to ask (nothing to void or refund)


class PaymentMovedOn(Exception):
    """The payment moved on between the provider's call and its record in a way the call did not
    cover (a charge started meanwhile): not a user's error, the message is retried and asks again."""


def payment_charge(*, payment_id: UUID) -> Payment | None:
    """The provider's answer to a pending payment (its timer is due). Charges once per payment,
    whatever the retries: a late or repeated timer finds the payment no longer pending.

    Three steps: the charge's attempt is recorded (its own transaction), the provider is asked
    with no transaction open, its answer is recorded under the payment's lock."""
    calls = payment_charges_ask([payment_id])
    with transaction.atomic(savepoint=False):
        return payment_charge_record(payment_for_update(payment_id), calls.get(payment_id))


def payment_charges_ask(payment_ids: Iterable[UUID]) -> dict[UUID, ProviderCall]:
    """Ask the provider to charge the pending payments among ``payment_ids``, concurrently, and
    return its answers by payment id. Call with no transaction open: the provider is asked
    with no lock held.

    Each pending payment's first charge is recorded as attempt 1 before it is asked (a short
    transaction of its own, committed); a payment asked again (a repeated timer, a crash
    before the answer was recorded) is asked with the same key, ``<payment id>:<attempt>``,
    and the provider gives the same answer: nothing is charged twice.
    """
    ids = set(payment_ids)
    with transaction.atomic():  # committed before the provider is asked; locks in pk order, held briefly
        pending = [payment for payment in payments_for_update(ids).values()
                   if payment.status == Payment.Status.PENDING]
        first = [payment.pk for payment in pending if not payment.charge_attempt]
        if first:
            Payment.objects.filter(pk__in=first).update(charge_attempt=1, updated_at=timezone.now())
            for payment in pending:
                payment.charge_attempt = payment.charge_attempt or 1
    provider = payment_provider()
    answers = provider_calls_concurrently({
        payment.pk: partial(provider.charge, idempotency_key=_charge_key(payment.pk, payment.charge_attempt),
                            amount=cast(Decimal, payment.amount),  # a pending payment's is known (a check constraint)
                            currency=payment.currency, method=payment.method)
        for payment in pending})
    fault_point("payments.after_provider")  # charged, not recorded: the next attempt asks with the same key
    return {payment.pk: ProviderCall(payment.status, payment.charge_attempt, answers[payment.pk])
            for payment in pending}


def payments_to_charge(payment_ids: Iterable[UUID]) -> dict[UUID, Payment]:
    """The payments of several due answers, locked together (``payment_charge_record`` each).
    Caller holds the transaction."""
    return payments_for_update(payment_ids)


def payment_charge_record(payment: Payment | None, call: ProviderCall | None) -> Payment | None:
    """Record the provider's answer to a charge (``payment_charges_ask``). Caller holds the
    payment's row lock (None: there is no such payment).

    A payment no longer pending was answered before, or voided meanwhile: its void asked the
    provider to cancel this very charge (``payment_compensate``), so nothing is kept.
    """
    if payment is None or payment.status != Payment.Status.PENDING:
        return payment
    if call is None or call.answer is None or call.charge_attempt != payment.charge_attempt:
        raise PaymentMovedOn(f"payment {payment.pk} is pending at charge attempt {payment.charge_attempt}, "
                             f"but the provider's answer is for {call and call.charge_attempt}: asked again")
    answer = call.answer
    if answer.voided:
        return payment  # the void overtook the charge at the provider; the compensation records it
    if answer.approved:
        _payment_move(payment, Payment.Status.CAPTURED, provider_reference=answer.reference,
                      captured_at=timezone.now())
    else:
        _payment_move(payment, Payment.Status.DECLINED, reason=answer.reason)
    _result_emit(payment)
    return payment


def payment_compensate(*, order_id: UUID, reason: str) -> Payment:
    """The order is cancelled or has failed: void a pending payment, refund a captured one (once).

    The provider is asked first, with no transaction open (``payment_compensation_ask``), the
    answer recorded after (``payment_compensation_record``). A cancellation that overtakes
    the first request leaves a voided payment with no amount, so that the request, when it
    comes, charges nothing.
    """
    call = payment_compensation_ask(order_id=order_id)
    with transaction.atomic(savepoint=False):
        return payment_compensation_record(order_id=order_id, reason=reason, call=call)


def payment_compensation_ask(*, order_id: UUID) -> ProviderCall:
    """Ask the provider to give back what the order's payment took or may take: a captured
    payment is refunded (key ``refund-<id>``), a pending one whose charge was asked is voided
    (key ``void-<id>:<attempt>``: the charge is cancelled, or given back if it was made).
    A pending payment never asked and any other needs no call. No transaction open."""
    payment = Payment.objects.filter(order_id=order_id).first()
    if payment is None:
        return ProviderCall(status="", charge_attempt=0, answer=None)
    answer = None
    provider = payment_provider()
    if payment.status == Payment.Status.CAPTURED:
        answer = provider.refund(idempotency_key=f"refund-{payment.id}", reference=payment.provider_reference,
                                 amount=cast(Decimal, payment.amount),  # known unless voided (a check constraint)
                                 currency=payment.currency)
    elif payment.status == Payment.Status.PENDING and payment.charge_attempt:
        answer = provider.void(idempotency_key=f"void-{_charge_key(payment.id, payment.charge_attempt)}",
                               charge_key=_charge_key(payment.id, payment.charge_attempt))
    fault_point("payments.after_provider")
    return ProviderCall(payment.status, payment.charge_attempt, answer)


def payment_compensation_record(*, order_id: UUID, reason: str, call: ProviderCall | None) -> Payment:
    """Record a compensation whose provider call (``payment_compensation_ask``) is done. Caller
    holds the transaction; the payment is locked here.

    A payment that moved on beyond what the call covered (a charge asked meanwhile) raises
    ``PaymentMovedOn``: the message is retried and asks the provider again.
    """
    payment, created = _payment_locked_or_new(order_id, amount=None, status=Payment.Status.VOIDED, reason=reason)
    if created:
        return payment
    covered = call is not None and call.answer is not None and call.charge_attempt == payment.charge_attempt
    if payment.status == Payment.Status.PENDING:
        if payment.charge_attempt and not covered:
            raise PaymentMovedOn(f"payment {payment.pk} was asked to charge meanwhile: voided once asked again")
        _payment_move(payment, Payment.Status.VOIDED, reason=reason)
        timer_cancel(PaymentChargeDue, correlation_id=order_id)  # one already on its way finds it voided
    elif payment.status == Payment.Status.CAPTURED:
        # given back by a refund, or by the void of the charge that was captured meanwhile
        if (not covered or call is None or call.answer is None  # covered implies both: said again for mypy
                or call.status not in (Payment.Status.CAPTURED, Payment.Status.PENDING)):
            raise PaymentMovedOn(f"payment {payment.pk} was captured meanwhile: refunded once asked again")
        _payment_move(payment, Payment.Status.REFUNDED, refund_reference=call.answer.reference,
                      refunded_at=timezone.now(), reason=reason)
        _result_emit(payment)
    return payment


def provider_calls_concurrently(calls: dict[UUID, Callable[[], ProviderAnswer]]) -> dict[UUID, ProviderAnswer]:
    """Run the provider calls at once (at most ``PAYMENT_PROVIDER_CONCURRENCY`` in flight) and
    return their answers by key; the first failure is raised once all have ended. The threads
    touch no database connection: the provider is outside."""
    if len(calls) <= 1:
        return {key: call() for key, call in calls.items()}
    with ThreadPoolExecutor(max_workers=min(len(calls), settings.PAYMENT_PROVIDER_CONCURRENCY),
                            thread_name_prefix="payment-provider") as pool:
        futures = {key: pool.submit(call) for key, call in calls.items()}
    return {key: future.result() for key, future in futures.items()}


def _charge_key(payment_id: UUID, attempt: int) -> str:
    return f"{payment_id}:{attempt}"


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
    timer_set(PaymentChargeDue(order_id=payment.order_id, payment_id=payment.id), queue=PAYMENT_REQUESTS,
              correlation_id=payment.order_id, producer=PRODUCER, after=payment_provider().latency_seconds())


def _result_emit(payment: Payment) -> None:
    """Tell the shop how the payment stands. Caller holds the payment's row lock."""
    refunded = payment.status == Payment.Status.REFUNDED
    outbox_emit(
        PaymentResult(
            order_id=payment.order_id,
            payment_id=payment.id,
            status=payment.status,  # type: ignore[arg-type]  # checked by the contract
            amount=cast(Decimal, payment.amount),  # known unless voided, and a voided payment tells nothing
            currency=payment.currency,
            reference=payment.refund_reference if refunded else payment.provider_reference,
            reason=payment.reason,
        ),
        queue=PAYMENT_RESULTS, correlation_id=payment.order_id, producer=PRODUCER,
    )

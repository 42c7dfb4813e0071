"""Every row lock payments takes. One payment per order: whoever holds its lock decides its next status."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from payments.models import Payment


def payment_of_order_for_update(order_id: UUID) -> Payment | None:
    """The order's payment, locked until the end of the caller's transaction (None: no payment yet)."""
    return Payment.objects.select_for_update().filter(order_id=order_id).order_by("pk").first()


def payment_for_update(payment_id: UUID) -> Payment | None:
    """The payment ``payment_id``, locked until the end of the caller's transaction."""
    return Payment.objects.select_for_update().filter(pk=payment_id).order_by("pk").first()


def payments_for_update(payment_ids: Iterable[UUID]) -> dict[UUID, Payment]:
    """The payments among ``payment_ids`` that exist, by id, locked in primary-key order (two
    transactions locking some of the same payments never wait for each other) in one statement."""
    return {payment.pk: payment
            for payment in Payment.objects.select_for_update().filter(pk__in=set(payment_ids)).order_by("pk")}

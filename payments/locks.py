"""Every row lock payments takes. One payment per order: whoever holds its lock decides its next status."""

from __future__ import annotations

from uuid import UUID

from payments.models import Payment


def payment_of_order_for_update(order_id: UUID) -> Payment | None:
    """The order's payment, locked until the end of the caller's transaction (None: no payment yet)."""
    return Payment.objects.select_for_update().filter(order_id=order_id).order_by("pk").first()


def payment_for_update(payment_id: UUID) -> Payment | None:
    """The payment ``payment_id``, locked until the end of the caller's transaction."""
    return Payment.objects.select_for_update().filter(pk=payment_id).order_by("pk").first()

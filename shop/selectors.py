"""Shop reads used by the API, the admin, the demo and other apps."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from config.errors import NotFound
from shop.models import Order


def order_list(*, user) -> QuerySet[Order]:
    """Staff see every order, a customer their own."""
    qs = Order.objects.prefetch_related("lines").select_related("customer")
    if user.is_staff:
        return qs
    return qs.filter(customer__user=user)


def order_get(*, user, order_id: UUID | str) -> Order:
    """The order if ``user`` may see it; NotFound otherwise (never telling that it exists)."""
    try:
        return order_list(user=user).prefetch_related("history").get(pk=order_id)
    except (Order.DoesNotExist, ValueError, ValidationError):
        raise NotFound("order not found") from None


def order_contact_get(*, order_id: UUID | str) -> tuple[str, str] | None:
    """(name, email) to tell the customer about an order, for customer service."""
    row = Order.objects.filter(pk=order_id).values_list("contact_name", "contact_email").first()
    return tuple(row) if row else None


@dataclass(frozen=True)
class PaymentTerms:
    total: Decimal
    currency: str
    method: str


def order_payment_terms_get(*, order_id: UUID | str) -> PaymentTerms | None:
    """What to charge for an order: its catalogue total, for payments."""
    row = Order.objects.filter(pk=order_id).values_list("total", "currency", "payment_method").first()
    return PaymentTerms(*row) if row else None


def order_status_map(*, order_ids: list[str]) -> dict[str, Order]:
    return {str(o.id): o for o in Order.objects.filter(pk__in=order_ids)}

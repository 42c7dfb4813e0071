from uuid import UUID

from django.db.models import QuerySet

from payments.models import Payment


def payment_for_order(*, order_id: UUID) -> Payment | None:
    return Payment.objects.filter(order_id=order_id).first()


def payment_list() -> QuerySet[Payment]:
    """Every payment, the latest first."""
    return Payment.objects.order_by("-created_at", "-pk")

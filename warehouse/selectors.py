from uuid import UUID

from django.db.models import QuerySet

from warehouse.models import Reservation, StockItem


def stock_list() -> QuerySet[StockItem]:
    return StockItem.objects.order_by("sku")


def reservation_get(*, order_id: UUID) -> Reservation | None:
    return Reservation.objects.filter(order_id=order_id).prefetch_related("lines__stock_item").first()

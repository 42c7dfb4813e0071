from __future__ import annotations

from uuid import UUID

from support.models import CustomerContact, TrackingRecord


def shipment_id_normalized(shipment_id: str) -> str:
    """A shipment id as typed or pasted: stray spaces gone, upper case (ids are made upper case)."""
    return shipment_id.strip().upper()


def tracking_get(*, shipment_id: str) -> TrackingRecord | None:
    """The shipment's tracking record with its entries, by its id in any case and with stray spaces."""
    records = TrackingRecord.objects.prefetch_related("entries")
    return (records.filter(shipment_id=shipment_id).first()
            or records.filter(shipment_id=shipment_id_normalized(shipment_id)).first())


def order_shipping_method(*, order_id: UUID) -> str:
    """The order's shipping method, as its ``order.placed`` said ("" before that arrived)."""
    return CustomerContact.objects.filter(order_id=order_id).values_list("shipping_method", flat=True).first() or ""

from support.models import TrackingRecord


def tracking_get(*, shipment_id: str) -> TrackingRecord | None:
    return TrackingRecord.objects.filter(shipment_id=shipment_id).prefetch_related("entries").first()

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from support.models import TRACKING_RANK
from support.selectors import tracking_get

STAGE_LABELS = {
    "awaiting_vehicle": "Waiting for a vehicle",
    "vehicle_assigned": "Vehicle assigned",
    "picked_up": "Picked up",
    "in_transit": "In transit",
    "out_for_delivery": "Out for delivery",
    "delivered": "Delivered",
}


def track_page(request: HttpRequest, shipment_id: str) -> HttpResponse:
    """The customer's view of a shipment's journey (no personal data)."""
    record = tracking_get(shipment_id=shipment_id)
    if record is None:
        raise Http404("shipment not found")
    reached = {e.status: e for e in record.entries.all()}
    stages = [
        {"key": key, "label": STAGE_LABELS[key], "entry": reached.get(key), "current": key == record.status}
        for key in sorted(TRACKING_RANK, key=TRACKING_RANK.get)
        if key != "awaiting_vehicle" or key in reached
    ]
    return render(request, "support/track.html", {"record": record, "stages": stages})

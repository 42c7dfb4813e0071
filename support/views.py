import re

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from contracts.stages import SHIPMENT_STAGES, ShipmentStage
from support.selectors import tracking_get

STAGE_LABELS = {
    ShipmentStage.AWAITING_VEHICLE: "Waiting for a vehicle",
    ShipmentStage.VEHICLE_ASSIGNED: "Vehicle assigned",
    ShipmentStage.PICKED_UP: "Picked up",
    ShipmentStage.IN_TRANSIT: "In transit",
    ShipmentStage.OUT_FOR_DELIVERY: "Out for delivery",
    ShipmentStage.DELIVERED: "Delivered",
}
FINAL_STAGE = ShipmentStage.DELIVERED
REFRESH_SECONDS = 10
SHIPMENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


@require_safe
def track_search(request: HttpRequest) -> HttpResponse:
    """The front page's search form: to the shipment's page (``?shipment_id=``), or back to the
    front page without one; an id that cannot be one is a 400 page."""
    shipment_id = request.GET.get("shipment_id", "").strip()
    if not shipment_id:
        return redirect("home")
    if not SHIPMENT_ID_RE.match(shipment_id):
        return HttpResponse("Not a shipment id: letters, digits, '.', '_' and '-', at most 40.\n", status=400,
                            content_type="text/plain; charset=utf-8")
    return redirect("track", shipment_id=shipment_id)


@never_cache
def track_page(request: HttpRequest, shipment_id: str) -> HttpResponse:
    """The customer's view of a shipment's journey (no personal data): every stage, the time it
    was reached, the current one highlighted; the page refreshes itself until delivered."""
    record = tracking_get(shipment_id=shipment_id)
    if record is None:
        raise Http404("shipment not found")
    reached = {e.status: e for e in record.entries.all()}
    stages = [
        {"key": key, "label": STAGE_LABELS[key], "entry": reached.get(key), "current": key == record.status}
        for key in SHIPMENT_STAGES
        if key != ShipmentStage.AWAITING_VEHICLE or key in reached
    ]
    done = sum(1 for stage in stages if stage["entry"])
    return render(request, "support/track.html", {
        "record": record,
        "stages": stages,
        "current_label": STAGE_LABELS.get(record.status, record.status),
        "delivered": record.status == FINAL_STAGE,
        "progress_pct": round(100 * done / len(stages)) if stages else 0,
        "refresh_seconds": REFRESH_SECONDS,
    })

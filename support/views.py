"""The customer's tracking pages, in the customer's words and language (LocaleMiddleware) and in
the shop's time zone (TIME_ZONE); no personal data."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from contracts.stages import SHIPMENT_STAGES, ShipmentStage
from support.mails import delivery_window
from support.selectors import order_shipping_method, shipment_id_normalized, tracking_get

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

# What each stage means to the customer: a short label, and a sentence under it once reached.
STAGE_LABELS: dict[str, StrPromise] = {
    ShipmentStage.AWAITING_VEHICLE: _("Packed"),
    ShipmentStage.VEHICLE_ASSIGNED: _("Courier on the way to us"),
    ShipmentStage.PICKED_UP: _("Left our warehouse"),
    ShipmentStage.IN_TRANSIT: _("On its way"),
    ShipmentStage.OUT_FOR_DELIVERY: _("Out for delivery"),
    ShipmentStage.DELIVERED: _("Delivered"),
}
STAGE_TEXTS = {
    ShipmentStage.AWAITING_VEHICLE: _("Your parcel is packed and waits for the courier."),
    ShipmentStage.VEHICLE_ASSIGNED: _("A courier is coming to collect your parcel."),
    ShipmentStage.PICKED_UP: _("The courier has collected your parcel from our warehouse."),
    ShipmentStage.IN_TRANSIT: _("Your parcel is travelling to your area."),
    ShipmentStage.OUT_FOR_DELIVERY: _("The courier is bringing your parcel to you today."),
    ShipmentStage.DELIVERED: _("Your parcel has been handed over."),
}
FINAL_STAGE = ShipmentStage.DELIVERED
REFRESH_SECONDS = 10
SHIPMENT_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


def _help() -> dict[str, str]:
    return {"shop": settings.SHOP_NAME, "email": settings.SHOP_CONTACT_EMAIL, "phone": settings.SHOP_CONTACT_PHONE,
            "carrier": settings.SHOP_CARRIER}


def _not_found(request: HttpRequest, shipment_id: str, *, status: int = 404) -> HttpResponse:
    """The page for an id that names no shipment (or cannot be one): what to check, a search
    box to try again, the way back and whom to ask."""
    return render(request, "support/track_not_found.html",
                  {"shipment_id": shipment_id[:60], "bad_form": status == 400, "help": _help()}, status=status)


@require_safe
def track_search(request: HttpRequest) -> HttpResponse:
    """The front page's search form: to the shipment's page (``?shipment_id=``), or back to the
    front page without one; an id that cannot be one is a 400 page."""
    shipment_id = shipment_id_normalized(request.GET.get("shipment_id", ""))
    if not shipment_id:
        return redirect("home")
    if not SHIPMENT_ID_RE.match(shipment_id):
        return _not_found(request, shipment_id, status=400)
    return redirect("track", shipment_id=shipment_id)


@never_cache
def track_page(request: HttpRequest, shipment_id: str) -> HttpResponse:
    """The customer's view of a shipment's journey (no personal data): every stage, the time it
    was reached, the current one highlighted, the expected delivery window, the carrier and
    whom to ask; the page refreshes itself until delivered."""
    record = tracking_get(shipment_id=shipment_id)
    if record is None:
        return _not_found(request, shipment_id)
    reached = {e.status: e for e in record.entries.all()}
    stages = [
        {"key": key, "label": STAGE_LABELS[key], "text": STAGE_TEXTS[key] if key in reached else "",
         "entry": reached.get(key), "current": key == record.status}
        for key in SHIPMENT_STAGES
        if key != ShipmentStage.AWAITING_VEHICLE or key in reached
    ]
    done = sum(1 for stage in stages if stage["entry"])
    delivered = record.status == FINAL_STAGE
    left = reached.get(ShipmentStage.PICKED_UP)
    window = None if delivered else delivery_window(shipping_method=order_shipping_method(order_id=record.order_id),
                                                    since=left.timestamp if left else None)
    return render(request, "support/track.html", {
        "record": record,
        "stages": stages,
        "current_label": STAGE_LABELS.get(record.status, record.status),
        "delivered": delivered,
        "delivered_at": reached[FINAL_STAGE].timestamp if delivered else None,
        "window": window,
        "progress_pct": round(100 * done / len(stages)) if stages else 0,
        "refresh_seconds": REFRESH_SECONDS,
        "help": _help(),
    })

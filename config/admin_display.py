"""How the admin shows what every app's pages share: short ids that link, addresses, ages.

The apps never import each other's models: a link to another app's page is made from the
admin's URL names (``admin:<app>_<model>_change``) and the id the row already carries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

SHORT = 8


def short_id(value: Any) -> str:
    """The first 8 characters of an id (after a prefix such as ``SHP-``): enough to tell rows
    apart in a list; the full id is on the row's page and in the link's title."""
    text = str(value or "")
    prefix, _, rest = text.rpartition("-") if text.startswith("SHP-") else ("", "", text)
    return f"{prefix}-{rest[:SHORT]}" if prefix else text[:SHORT]


def short_code(value: Any) -> SafeString | str:
    """An id shown short, the full id in its title (for the column that links to the row itself)."""
    if not value:
        return "—"
    return format_html('<code title="{}">{}</code>', value, short_id(value))


def admin_url(name: str, *args: Any, query: dict[str, Any] | None = None) -> str:
    """The URL of an admin page by its name (``""`` when that page is not installed)."""
    try:
        url = reverse(f"admin:{name}", args=args)
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(query)}" if query else url


def id_link(name: str, value: Any, *, short: bool = True) -> SafeString | str:
    """A link to the change page ``admin:<name>`` of the row whose id is ``value``, shown short."""
    if not value:
        return "—"
    label = short_id(value) if short else str(value)
    url = admin_url(name, value)
    if not url:
        return label
    return format_html('<a href="{}" title="{}"><code>{}</code></a>', url, value, label)


def links(*items: tuple[str, str]) -> SafeString | str:
    """``(label, url)`` pairs as a row of links, those without a URL left out."""
    present = [(url, label) for label, url in items if url]
    if not present:
        return "—"
    return format_html_join(" · ", '<a href="{}">{}</a>', present)


def address_text(address: dict[str, Any] | None) -> str:
    """A postal address on one line, in the order it is written on a parcel."""
    if not isinstance(address, dict) or not address:
        return "—"
    city = " ".join(str(address[k]) for k in ("postal_code", "city") if address.get(k))
    parts = [str(address.get("street") or ""), city, str(address.get("country") or "")]
    return ", ".join(p for p in parts if p) or "—"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest whole unit: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if moment is None:
        return "—"
    seconds = max(0, int(((now or timezone.now()) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 60:
        return f"{minutes} min"
    if hours < 24:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def page_url(name: str, *args: Any) -> str:
    """The URL of a site page (not the admin's) by its name, ``""`` when it is not installed."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def order_links(order_id: Any, *, shipment_id: str = "", leave_out: str = "") -> SafeString | str:
    """Every page about one order, across the apps: the order, its reservation (the pick list),
    payment, shipment, the customer's tracking (admin and public page) and its journey.

    ``leave_out``: the label of the page this row is already on.
    """
    if not order_id:
        return "—"
    by_order = {"order_id": str(order_id)}
    shipment_page = (admin_url("transport_shipment_change", shipment_id) if shipment_id
                     else admin_url("transport_shipment_changelist", query=by_order))
    pages = [
        ("order", admin_url("shop_order_change", order_id)),
        ("reservation", admin_url("warehouse_reservation_changelist", query=by_order)),
        ("payment", admin_url("payments_payment_changelist", query=by_order)),
        ("shipment", shipment_page),
        ("tracking", admin_url("support_trackingrecord_changelist", query=by_order)),
        ("tracking page", page_url("track", shipment_id) if shipment_id else ""),
        ("journey", page_url("observability:journey", order_id)),
    ]
    return links(*((label, url) for label, url in pages if label != leave_out))

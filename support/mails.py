"""What a customer mail says: its words in the customer's language, the shop's name and contact,
the order's number, lines and total, the tracking link. Rendering only: no writes.

The subject and the paragraphs are gettext strings here (locale/<lang>/LC_MESSAGES/django.po);
the layout is support/templates/support/mail/message.txt and .html.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote
from uuid import UUID

from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format, number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# What is mailed, by the notification's status: the order's own events and three shipment stages.
# The other stages (awaiting_vehicle, vehicle_assigned, in_transit) are on the tracking page only.
MAILED_STAGES = ("picked_up", "out_for_delivery", "delivered")
SUBJECTS = {
    "received": gettext_lazy("Order %(number)s received"),
    "paid": gettext_lazy("Order %(number)s is paid and confirmed"),
    "rejected": gettext_lazy("We could not accept order %(number)s"),
    "cancelled": gettext_lazy("Order %(number)s is cancelled"),
    "payment_failed": gettext_lazy("Payment for order %(number)s did not go through"),
    "picked_up": gettext_lazy("Order %(number)s is on its way"),
    "out_for_delivery": gettext_lazy("Order %(number)s is out for delivery today"),
    "delivered": gettext_lazy("Order %(number)s has been delivered"),
}
# The mails that list what the order holds and its total.
WITH_LINES = frozenset({"received", "paid", "cancelled", "payment_failed", "picked_up"})
# Whatever the order's name field holds, the greeting shows no more than this, and no link.
GREETING_NAME_MAX = 40
_LINK_LIKE = re.compile(r"\S*(?:://|www\.|@|[\w-]\.[^\W\d_]{2,})\S*", re.IGNORECASE)
_NOT_NAME = re.compile(r"[^\w\s.'-]|[\d_]")


def greeting_name(name: str) -> str:
    """The part of the order's name field fit to greet with: letters, spaces, ``.'-`` only, no
    link-like word (``x.com``, ``www.``, ``a@b``), at most GREETING_NAME_MAX characters; ""
    when nothing is left. The field is the sender's own text: a mail must not carry a link of theirs."""
    cleaned = _NOT_NAME.sub(" ", _LINK_LIKE.sub(" ", name))
    words = " ".join(cleaned.split())
    if len(words) > GREETING_NAME_MAX:
        words = words[:GREETING_NAME_MAX].rsplit(" ", 1)[0]
    return words.strip(" .'-")


def order_number(order_id: UUID | str) -> str:
    """The order's number as a customer reads it: the first eight characters of its id."""
    return str(order_id)[:8].upper()


def track_url(shipment_id: str) -> str:
    """The shipment's tracking page, as an absolute link (SITE_URL): mails leave the site."""
    return f"{settings.SITE_URL}/track/{quote(shipment_id)}/"


def language_for(*, country: str, requested: str) -> str:
    """The language of a customer's mails: the shipping country's (CUSTOMER_LANGUAGE_BY_COUNTRY),
    else the one the order was placed in, else CUSTOMER_LANGUAGE_DEFAULT; always one of LANGUAGES."""
    known = {code for code, _name in settings.LANGUAGES}
    by_country = settings.CUSTOMER_LANGUAGE_BY_COUNTRY.get(country.strip().upper())
    for candidate in (by_country, requested.split("-")[0].lower() if requested else None):
        if candidate in known:
            return candidate
    return settings.CUSTOMER_LANGUAGE_DEFAULT


def delivery_window(*, shipping_method: str, since: datetime | None) -> tuple[date, date] | None:
    """The days the parcel is expected on, counted from ``since`` (it left the warehouse; now
    if not yet) in the shop's time zone; None for a method with no window (DELIVERY_DAYS)."""
    days = settings.DELIVERY_DAYS.get(shipping_method)
    if not days:
        return None
    start = timezone.localdate(since or timezone.now())
    return start + timedelta(days=days[0]), start + timedelta(days=days[1])


def window_text(window: tuple[date, date]) -> str:
    """The window in the active language's format: "February 5 – February 7" / "5. veebruar – 7. veebruar"."""
    first, last = (date_format(day, "MONTH_DAY_FORMAT") for day in window)
    return first if first == last else f"{first} – {last}"


def amount_text(amount: str | Decimal, currency: str) -> str:
    """An amount in the active language's format: 1,539.97 EUR / 1 539,97 EUR."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return f"{amount} {currency}"
    return f"{number_format(value, 2, use_l10n=True, force_grouping=True)} {currency}"


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def _paragraphs(status: str, details: dict, *, shipping_method: str) -> list[str]:
    carrier = settings.SHOP_CARRIER
    if status == "received":
        return [_("Thank you for your order! We have received it and are checking that everything is in stock."),
                _("We will write again when your order is confirmed and paid.")]
    if status == "paid":
        return [_("Your payment has been received and your order is confirmed."),
                _("We are packing your order now and will write again when it leaves our warehouse.")]
    if status == "rejected":
        return [_("We are sorry, but we cannot accept your order: we do not have enough in stock of "
                  "everything you ordered.")]
    if status == "cancelled":
        return [_("Your order has been cancelled as you asked."),
                _("If you had already paid, the whole amount is refunded to the card you paid with.")]
    if status == "payment_failed":
        declined = str(details.get("message", "")).startswith("payment declined")
        return [_("Your card was declined, so we could not take payment for your order.") if declined else
                _("The payment service did not answer in time, so we could not take payment for your order."),
                _("Your order has been cancelled and nothing has been charged. You are welcome to order again.")]
    if status == "picked_up":
        paragraphs = [_("Good news: your order has left our warehouse and is on its way to you with %(carrier)s.")
                      % {"carrier": carrier}]
        window = delivery_window(shipping_method=shipping_method, since=parse_datetime(details.get("timestamp", "")))
        if window:
            paragraphs.append(_("Expected delivery: %(window)s.") % {"window": window_text(window)})
        return paragraphs
    if status == "out_for_delivery":
        return [_("Your order is out for delivery today with %(carrier)s.") % {"carrier": carrier},
                _("Please make sure someone can take it in.")]
    if status == "delivered":
        return [_("Your order has been delivered. Thank you for shopping with us!"),
                _("If anything is wrong with it, just reply to this mail.")]
    raise ValueError(f"no mail for {status!r}")


def _missing(details: dict, names: dict[str, str]) -> list[str]:
    return [_("%(product)s: you ordered %(requested)s, we have %(available)s") % {
                "product": names.get(short["product_id"]) or short["product_id"],
                "requested": short["requested"], "available": short["available"]}
            for short in details.get("unavailable", [])]


def subject_render(*, status: str, order_id: UUID | str, language: str) -> str:
    with translation.override(language):
        return str(SUBJECTS[status] % {"number": order_number(order_id)})


def mail_render(*, status: str, order_id: UUID | str, shipment_id: str, details: dict, name: str,
                language: str, summary: dict, shipping_method: str) -> RenderedMail:
    """A customer mail in ``language``: subject, plain text and HTML."""
    with translation.override(language):
        lines = summary.get("lines", []) if status in WITH_LINES else []
        names = {line["product_id"]: line.get("name", "") for line in summary.get("lines", [])}
        greeted = greeting_name(name)
        context = {
            "greeting": _("Hello %(name)s,") % {"name": greeted} if greeted else _("Hello,"),
            "paragraphs": _paragraphs(status, details, shipping_method=shipping_method),
            "missing": _missing(details, names) if status == "rejected" else [],
            "after_missing": _("Nothing has been charged. You are welcome to order again what we have in stock.")
            if status == "rejected" else "",
            "number": order_number(order_id),
            "lines": [{"name": line.get("name") or line["product_id"], "quantity": line["quantity"]}
                      for line in lines],
            "total": amount_text(summary["total"], summary.get("currency", "")) if lines and "total" in summary
            else "",
            "track_url": track_url(shipment_id) if shipment_id else "",
            "shop": {"name": settings.SHOP_NAME, "email": settings.SHOP_CONTACT_EMAIL,
                     "phone": settings.SHOP_CONTACT_PHONE, "site": settings.SITE_URL},
        }
        subject = str(SUBJECTS[status] % {"number": context["number"]})
        context["subject"] = subject
        context["language"] = language
        return RenderedMail(subject=subject, text=render_to_string("support/mail/message.txt", context).strip() + "\n",
                            html=render_to_string("support/mail/message.html", context))

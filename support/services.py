"""Customer service writes: the customer's contact, the tracking history and telling the customer.

Each service owns its transaction (``transaction.atomic``). The ones called from a message
handler join the handler's transaction without a savepoint of their own (``savepoint=False``):
the handler never carries on after an error, the whole transaction rolls back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal
from urllib.parse import quote
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from contracts.messages import CustomerNotified
from contracts.stages import stage_rank
from messaging.outbox import outbox_emit
from messaging.topology import CUSTOMER_NOTIFICATIONS
from support.locks import customer_contact_for_update, notifications_to_mail_for_update, tracking_record_for_update
from support.models import CustomerContact, CustomerNotification, TrackingEntry, TrackingRecord

PRODUCER = "support"
logger = logging.getLogger(__name__)

Outcome = Literal["cancelled", "payment_failed"]

STAGE_SUBJECTS = {
    "awaiting_vehicle": "Your order is packed and waiting for a vehicle",
    "vehicle_assigned": "A vehicle has been assigned to your order",
    "picked_up": "Your order has been picked up",
    "in_transit": "Your order is on its way",
    "out_for_delivery": "Your order is out for delivery",
    "delivered": "Your order has been delivered",
    "cancelled": "Your order has been cancelled",
    "payment_failed": "We could not take payment for your order",
}
OUTCOME_TEXT = {
    "cancelled": "Your order has been cancelled as you asked. Any payment taken is refunded in full.",
    "payment_failed": "Your payment did not go through, so your order has been cancelled and nothing was charged.",
}
# Whom a notification greets while the order's contact has not arrived yet.
UNKNOWN_NAME = "customer"


def _greeting(name: str) -> str:
    return f"Hello {name or UNKNOWN_NAME},\n\n"


@dataclass(frozen=True)
class SummaryLine:
    product_id: str
    name: str
    quantity: int


@dataclass(frozen=True)
class OrderSummary:
    """What an order holds, as the mails show it."""

    lines: list[SummaryLine]
    total: Decimal
    currency: str

    def as_json(self) -> dict:
        return {"lines": [asdict(line) for line in self.lines], "total": str(self.total), "currency": self.currency}


@transaction.atomic(savepoint=False)
def customer_contact_record(*, order_id: UUID, name: str, email: str,
                            summary: OrderSummary | None = None) -> CustomerContact:
    """Keep the contact of a new order (from ``order.placed``), and what the order holds for the
    mails' summary. Once: a repeat changes nothing.

    Notifications written before the contact arrived and not mailed yet get their recipient
    (and greeting) now, so they are mailed to the right address.
    """
    contact = _contact_locked(order_id)
    if contact.known:
        return contact
    contact.name, contact.email, contact.received_at = name, email, timezone.now()
    contact.order_summary = summary.as_json() if summary else {}
    contact.save(update_fields=["name", "email", "received_at", "order_summary"])
    unaddressed = list(CustomerNotification.objects.filter(order_id=order_id, sent_at__isnull=True, recipient=""))
    for notification in unaddressed:
        notification.recipient = email
        if notification.body.startswith(_greeting("")):
            notification.body = _greeting(name) + notification.body.removeprefix(_greeting(""))
    CustomerNotification.objects.bulk_update(unaddressed, ["recipient", "body"])
    return contact


@transaction.atomic(savepoint=False)
def tracking_record_stage(
    *, order_id: UUID, shipment_id: str, status: str, message: str, timestamp: datetime
) -> TrackingEntry | None:
    """Record one stage of a shipment and tell the customer. A repeated stage changes nothing,
    and the record's status only moves up (a late lower stage is recorded, not made current)."""
    record = tracking_record_for_update(shipment_id)
    if record is None:  # the shipment's first stage (or another worker is writing it: its insert is waited for)
        TrackingRecord.objects.bulk_create([TrackingRecord(shipment_id=shipment_id, order_id=order_id, status=status)],
                                           ignore_conflicts=True)
        record = tracking_record_for_update(shipment_id)
    # The record's lock orders the stages of one shipment. Its status is the highest stage
    # recorded so far, so a stage above it (the usual case: stages arrive in order) cannot
    # have been recorded yet; only a stage at or below it needs looking up.
    rank, current_rank = stage_rank(status), stage_rank(record.status)
    if rank <= current_rank and record.entries.filter(status=status).exists():
        return None
    entry = TrackingEntry.objects.create(record=record, status=status, message=message, timestamp=timestamp)
    if rank > current_rank:
        record.status = status
        record.save(update_fields=["status", "updated_at"])
    contact = _contact_locked(order_id)
    notification = CustomerNotification.objects.create(
        order_id=order_id, shipment_id=shipment_id, status=status, recipient=contact.email,
        subject=f"{STAGE_SUBJECTS[status]} ({shipment_id})",
        body=f"{_greeting(contact.name)}{message}.\n\nFollow your shipment: {track_url(shipment_id)}\n",
    )
    outbox_emit(
        queue=CUSTOMER_NOTIFICATIONS, type=CustomerNotified.TYPE, correlation_id=order_id, producer=PRODUCER,
        payload=CustomerNotified(order_id=order_id, shipment_id=shipment_id, status=status, message=message,
                                 timestamp=timestamp, notification_id=notification.pk),
    )
    return entry


@transaction.atomic(savepoint=False)
def customer_tell_order_outcome(*, order_id: UUID, outcome: Outcome, message: str) -> CustomerNotification:
    """Tell the customer their order ended without delivery (cancelled, payment failed). Once."""
    contact = _contact_locked(order_id)
    body = f"{_greeting(contact.name)}{OUTCOME_TEXT[outcome]}\n" + (f"\nDetails: {message}\n" if message else "")
    # the contact's lock orders the order's notifications: none of this outcome can appear meanwhile
    notification = CustomerNotification.objects.filter(order_id=order_id, status=outcome).first()
    if notification is None:
        notification = CustomerNotification.objects.create(
            order_id=order_id, status=outcome, shipment_id="", recipient=contact.email, body=body,
            subject=f"{STAGE_SUBJECTS[outcome]} ({str(order_id)[:8]})")
    return notification


def track_url(shipment_id: str) -> str:
    """The shipment's tracking page, as an absolute link (SITE_URL): mails leave the site."""
    return f"{settings.SITE_URL}/track/{quote(shipment_id)}/"


def mail_compose(notification: CustomerNotification, contact: CustomerContact | None) -> EmailMultiAlternatives:
    """The mail for a notification: its text, then the order's lines and total (when its
    contact brought them), as plain text and as HTML."""
    summary = (contact.order_summary if contact else None) or {}
    lines = summary.get("lines", [])
    text = notification.body
    if lines:
        text += "\nYour order:\n" + "".join(
            f"  {line['quantity']} x {line['name'] or line['product_id']} ({line['product_id']})\n" for line in lines)
        text += f"Total: {summary['total']} {summary['currency']}\n"
    html = render_to_string("support/mail.html", {
        "notification": notification, "lines": lines, "summary": summary,
        "track_url": track_url(notification.shipment_id) if notification.shipment_id else None,
    })
    mail = EmailMultiAlternatives(notification.subject, text, settings.DEFAULT_FROM_EMAIL, [notification.recipient])
    mail.attach_alternative(html, "text/html")
    return mail


def _contact_locked(order_id: UUID) -> CustomerContact:
    """The order's contact, locked; an empty one (to be filled in when it arrives) if it has not
    arrived yet. Caller holds the transaction: a contact arriving meanwhile waits for it, then
    finds and addresses what it wrote."""
    contact = customer_contact_for_update(order_id)
    if contact is None:  # another worker writing it meanwhile: its insert is waited for, then ours does nothing
        CustomerContact.objects.bulk_create([CustomerContact(order_id=order_id)], ignore_conflicts=True)
        contact = customer_contact_for_update(order_id)
    return contact


@transaction.atomic
def notifications_mail_again(*, notification_ids: Iterable[int]) -> int:
    """Give notifications not mailed yet (given up, or waiting out a back-off) a fresh set of
    attempts, due now. Returns how many."""
    return CustomerNotification.objects.filter(pk__in=list(notification_ids), sent_at__isnull=True).update(
        send_attempts=0, next_send_at=None, last_send_error="")


# A failed mail is tried again after 10 s, 20 s, 40 s, ... and given up after this many tries
# (it stays in the admin, unsent, with its last error).
NOTIFICATION_SEND_ATTEMPTS = 6
NOTIFICATION_RETRY_SECONDS = 10


@transaction.atomic
def notifications_send(*, limit: int = 100) -> int:
    """Mail the notifications not sent yet, oldest first, over one mail connection (qcluster
    calls it every half second). Returns how many were sent.

    The rows are locked (``SKIP LOCKED``) while they are mailed, so two schedulers never
    mail the same one; a mail that fails is tried again later, with back-off. A crash
    between the mail and the commit mails that one again on the next tick: at least once.
    """
    now = timezone.now()
    pending = list(notifications_to_mail_for_update(now=now, attempts_below=NOTIFICATION_SEND_ATTEMPTS, limit=limit))
    if not pending:
        return 0
    sent, failed = [], []

    def attempt_failed(notification: CustomerNotification, exc: Exception) -> None:
        logger.warning("notification %s not mailed (attempt %d): %r",
                       notification.pk, notification.send_attempts + 1, exc)
        notification.send_attempts += 1
        notification.next_send_at = now + timedelta(
            seconds=NOTIFICATION_RETRY_SECONDS * 2 ** (notification.send_attempts - 1))
        notification.last_send_error = repr(exc)[:2000]
        failed.append(notification)

    try:
        mail = get_connection()
        mail.open()
    except Exception as exc:  # noqa: BLE001 - the mail server is away: every one waits its back-off
        for notification in pending:
            attempt_failed(notification, exc)
    else:
        contacts = {c.order_id: c for c in CustomerContact.objects.filter(order_id__in={n.order_id for n in pending})}
        try:
            for notification in pending:
                try:
                    message = mail_compose(notification, contacts.get(notification.order_id))
                    message.connection = mail
                    message.send()
                except Exception as exc:  # noqa: BLE001 - one bad mail must not stop the others
                    attempt_failed(notification, exc)
                else:
                    sent.append(notification.pk)
        finally:
            mail.close()
    CustomerNotification.objects.filter(pk__in=sent).update(sent_at=timezone.now())
    if failed:
        CustomerNotification.objects.bulk_update(failed, ["send_attempts", "next_send_at", "last_send_error"])
    return len(sent)

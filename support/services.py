"""Customer service writes: the customer's contact, the tracking history and telling the customer.

Each service owns its transaction (``transaction.atomic``). The ones called from a message
handler join the handler's transaction without a savepoint of their own (``savepoint=False``):
the handler never carries on after an error, the whole transaction rolls back.

Telling the customer is a mail outbox: a ``CustomerNotification`` row written in the transaction
of its cause, mailed right after that transaction commits (``notifications_send_now``, on
commit) and at most once (the row is locked while it is mailed, and marked sent); the schedule
in ``support.tasks`` is the backstop for what a crash or a mail server left unsent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Literal, cast
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.utils import timezone

from contracts.messages import CustomerNotified
from contracts.stages import ShipmentStage, stage_rank
from messaging.outbox import outbox_emit
from messaging.topology import CUSTOMER_NOTIFICATIONS
from support.locks import customer_contact_for_update, notifications_to_mail_for_update, tracking_record_for_update
from support.mails import MAILED_STAGES, RenderedMail, mail_render, subject_render
from support.mails import track_url as track_url  # callers' name for it
from support.models import CustomerContact, CustomerNotification, TrackingEntry, TrackingRecord

PRODUCER = "support"
logger = logging.getLogger(__name__)

Outcome = Literal["cancelled", "payment_failed"]


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


@dataclass(frozen=True)
class Shortage:
    product_id: str
    requested: int
    available: int


def _notification_add(*, order_id: UUID, status: str, contact: CustomerContact, shipment_id: str = "",
                      details: dict[str, Any] | None = None) -> CustomerNotification:
    """The order's notification of ``status``, written once, mailed right after the caller's
    transaction commits. Caller holds the order's contact lock (``_contact_locked``): none of
    this status can appear meanwhile."""
    notification = CustomerNotification.objects.filter(order_id=order_id, status=status).first()
    if notification is not None:
        return notification
    notification = CustomerNotification.objects.create(
        order_id=order_id, status=status, shipment_id=shipment_id, recipient=contact.email, details=details or {},
        subject=subject_render(status=status, order_id=order_id,
                               language=contact.language or settings.CUSTOMER_LANGUAGE_DEFAULT))
    if notification.recipient:
        transaction.on_commit(partial(notifications_send_now, notification_ids=[notification.pk]))
    return notification


@transaction.atomic(savepoint=False)
def customer_contact_record(*, order_id: UUID, name: str, email: str, summary: OrderSummary | None = None,
                            language: str = "", shipping_method: str = "") -> CustomerContact:
    """Keep the contact of a new order (from ``order.placed``): ``email`` is the address of the
    account that placed it (the only one mailed), ``name`` the order's (to greet with), and what
    the order holds for the mails' summary; then tell the customer the order is received. Once:
    a repeat changes nothing.

    Notifications written before the contact arrived and not mailed yet get their recipient
    now, and are mailed after the commit too.
    """
    contact = _contact_locked(order_id)
    if contact.known:
        return contact
    contact.name, contact.email, contact.received_at = name, email, timezone.now()
    contact.order_summary = summary.as_json() if summary else {}
    contact.language = language or settings.CUSTOMER_LANGUAGE_DEFAULT
    contact.shipping_method = shipping_method
    contact.save(update_fields=["name", "email", "received_at", "order_summary", "language", "shipping_method"])
    unaddressed = list(CustomerNotification.objects.filter(order_id=order_id, sent_at__isnull=True, recipient=""))
    for notification in unaddressed:
        notification.recipient = email
        notification.subject = subject_render(status=notification.status, order_id=order_id,
                                              language=contact.language)
    CustomerNotification.objects.bulk_update(unaddressed, ["recipient", "subject"])
    if email and unaddressed:
        transaction.on_commit(partial(notifications_send_now, notification_ids=[n.pk for n in unaddressed]))
    _notification_add(order_id=order_id, status="received", contact=contact)
    return contact


@transaction.atomic(savepoint=False)
def tracking_record_stage(
    *, order_id: UUID, shipment_id: str, status: str, message: str, timestamp: datetime
) -> TrackingEntry | None:
    """Record one stage of a shipment and tell the shop (and, for the stages a customer hears
    of, ``MAILED_STAGES``, the customer). A repeated stage changes nothing, and the record's
    status only moves up (a late lower stage is recorded, not made current)."""
    record = tracking_record_for_update(shipment_id)
    if record is None:  # the shipment's first stage (or another worker is writing it: its insert is waited for)
        TrackingRecord.objects.bulk_create([TrackingRecord(shipment_id=shipment_id, order_id=order_id, status=status)],
                                           ignore_conflicts=True)
        record = cast(TrackingRecord, tracking_record_for_update(shipment_id))  # ours, or the other worker's
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
    notification = None
    if status in MAILED_STAGES:
        notification = _notification_add(order_id=order_id, status=status, contact=_contact_locked(order_id),
                                          shipment_id=shipment_id, details={"timestamp": timestamp.isoformat()})
    outbox_emit(
        queue=CUSTOMER_NOTIFICATIONS, type=CustomerNotified.TYPE, correlation_id=order_id, producer=PRODUCER,
        payload=CustomerNotified(order_id=order_id, shipment_id=shipment_id, status=ShipmentStage(status),
                                 message=message, timestamp=timestamp,
                                 notification_id=notification.pk if notification else None),
    )
    return entry


@transaction.atomic(savepoint=False)
def customer_tell_order_outcome(*, order_id: UUID, outcome: Outcome, message: str) -> CustomerNotification:
    """Tell the customer their order ended without delivery (cancelled, payment failed). Once."""
    return _notification_add(order_id=order_id, status=outcome, contact=_contact_locked(order_id),
                             details={"message": message})


@transaction.atomic(savepoint=False)
def customer_tell_order_paid(*, order_id: UUID) -> CustomerNotification:
    """Tell the customer their order is paid and confirmed (the warehouse started picking it). Once."""
    return _notification_add(order_id=order_id, status="paid", contact=_contact_locked(order_id))


@transaction.atomic(savepoint=False)
def customer_tell_order_rejected(*, order_id: UUID, message: str,
                                 unavailable: Sequence[Shortage]) -> CustomerNotification:
    """Tell the customer their order could not be accepted, naming what is short. Once."""
    return _notification_add(order_id=order_id, status="rejected", contact=_contact_locked(order_id),
                             details={"message": message, "unavailable": [asdict(s) for s in unavailable]})


def mail_compose(notification: CustomerNotification, contact: CustomerContact | None) -> EmailMultiAlternatives:
    """The mail for a notification, in the customer's language: its subject, plain text and HTML."""
    rendered = _mail_rendered(notification, contact)
    mail = EmailMultiAlternatives(rendered.subject, rendered.text, settings.DEFAULT_FROM_EMAIL,
                                  [notification.recipient])
    mail.attach_alternative(rendered.html, "text/html")
    return mail


def _mail_rendered(notification: CustomerNotification, contact: CustomerContact | None) -> RenderedMail:
    return mail_render(
        status=notification.status, order_id=notification.order_id, shipment_id=notification.shipment_id,
        details=notification.details or {}, name=contact.name if contact else "",
        language=(contact.language if contact else "") or settings.CUSTOMER_LANGUAGE_DEFAULT,
        summary=(contact.order_summary if contact else None) or {},
        shipping_method=contact.shipping_method if contact else "")


def _contact_locked(order_id: UUID) -> CustomerContact:
    """The order's contact, locked; an empty one (to be filled in when it arrives) if it has not
    arrived yet. Caller holds the transaction: a contact arriving meanwhile waits for it, then
    finds and addresses what it wrote."""
    contact = customer_contact_for_update(order_id)
    if contact is None:  # another worker writing it meanwhile: its insert is waited for, then ours does nothing
        CustomerContact.objects.bulk_create([CustomerContact(order_id=order_id)], ignore_conflicts=True)
        contact = cast(CustomerContact, customer_contact_for_update(order_id))  # ours, or the other worker's
    return contact


@transaction.atomic
def notifications_mail_again(*, notification_ids: Iterable[int]) -> int:
    """Give notifications not mailed yet (given up, or waiting out a back-off) a fresh set of
    attempts, due now, and mail them after the commit. Returns how many."""
    ids = list(notification_ids)
    count = CustomerNotification.objects.filter(pk__in=ids, sent_at__isnull=True).update(
        send_attempts=0, next_send_at=None, last_send_error="")
    transaction.on_commit(partial(notifications_send_now, notification_ids=ids))
    return count


# A failed mail is tried again after 10 s, 20 s, 40 s, ... and given up after this many tries
# (it stays in the admin, unsent, with its last error).
NOTIFICATION_SEND_ATTEMPTS = 6
NOTIFICATION_RETRY_SECONDS = 10


def notifications_send_now(*, notification_ids: list[int]) -> int:
    """Mail these notifications now: called on the commit of the transaction that wrote them,
    in the worker that wrote them, so a mail leaves within moments of its cause. Never raises
    (the commit is done; what is left unsent, the schedule mails). Returns how many were sent."""
    try:
        return notifications_send(notification_ids=notification_ids)
    except Exception:  # noqa: BLE001 - e.g. the database away for a moment: the schedule's backstop mails it
        logger.warning("notifications %s not mailed on commit; the schedule will", notification_ids, exc_info=True)
        return 0


@transaction.atomic
def notifications_send(*, limit: int = 100, notification_ids: list[int] | None = None) -> int:  # noqa: C901 - one lock, one mail connection: its steps share both
    """Mail the notifications not sent yet (``notification_ids`` only, if given), oldest first,
    over one mail connection. Returns how many were sent.

    The rows are locked (``SKIP LOCKED``) while they are mailed, so two senders (the worker on
    commit, the schedule) never mail the same one, and a sent one is marked in the same
    transaction; a mail that fails is tried again later, with back-off. A crash between the
    mail and the commit mails that one again later: the only case of a mail sent twice.
    """
    now = timezone.now()
    pending = list(notifications_to_mail_for_update(now=now, attempts_below=NOTIFICATION_SEND_ATTEMPTS, limit=limit,
                                                    ids=notification_ids))
    if not pending:
        return 0
    sent: list[CustomerNotification] = []
    failed: list[CustomerNotification] = []

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
                    notification.subject, notification.body = str(message.subject), str(message.body)  # as mailed
                    notification.sent_at = timezone.now()
                    sent.append(notification)
        finally:
            mail.close()
    if sent:
        CustomerNotification.objects.bulk_update(sent, ["subject", "body", "sent_at"])
    if failed:
        CustomerNotification.objects.bulk_update(failed, ["send_attempts", "next_send_at", "last_send_error"])
    return len(sent)

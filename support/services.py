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
from support.locks import (
    customer_contact_for_update,
    customer_contacts_for_update,
    notifications_to_mail_for_update,
    tracking_records_for_update,
)
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


@dataclass(frozen=True)
class ContactReport:
    """A new order's contact, as the shop announced it (``order.placed``)."""

    order_id: UUID
    name: str
    email: str
    summary: OrderSummary | None = None
    language: str = ""
    shipping_method: str = ""


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
    return customer_contacts_record([ContactReport(order_id=order_id, name=name, email=email, summary=summary,
                                                   language=language, shipping_method=shipping_method)])[order_id]


@transaction.atomic(savepoint=False)
def customer_contacts_record(reports: Sequence[ContactReport]) -> dict[UUID, CustomerContact]:
    """``customer_contact_record`` for several orders at once (a worker's batch), with set-based
    statements: the contacts locked in one statement (``_contacts_locked``), the new ones
    written with one UPDATE, the notifications waiting for an address and the "received" ones
    read and written in one statement each. Returns the contacts by order id."""
    contacts = _contacts_locked(report.order_id for report in reports)
    now = timezone.now()
    fresh: dict[UUID, CustomerContact] = {}
    for report in reports:
        contact = contacts[report.order_id]
        if contact.known:  # a repeat (or the same order twice in ``reports``)
            continue
        contact.name, contact.email, contact.received_at = report.name, report.email, now
        contact.order_summary = report.summary.as_json() if report.summary else {}
        contact.language = report.language or settings.CUSTOMER_LANGUAGE_DEFAULT
        contact.shipping_method = report.shipping_method
        fresh[report.order_id] = contact
    if not fresh:
        return contacts
    CustomerContact.objects.bulk_update(list(fresh.values()),
                                        ["name", "email", "received_at", "order_summary", "language",
                                         "shipping_method"])
    unaddressed = list(CustomerNotification.objects.filter(order_id__in=list(fresh), sent_at__isnull=True,
                                                           recipient=""))
    for notification in unaddressed:
        contact = fresh[notification.order_id]
        notification.recipient = contact.email
        notification.subject = subject_render(status=notification.status, order_id=notification.order_id,
                                              language=contact.language)
    if unaddressed:
        CustomerNotification.objects.bulk_update(unaddressed, ["recipient", "subject"])
        to_mail = [n.pk for n in unaddressed if n.recipient]
        if to_mail:
            transaction.on_commit(partial(notifications_send_now, notification_ids=to_mail))
    _notifications_add([_Wanted(order_id=order_id, status="received") for order_id in fresh], contacts)
    return contacts


@dataclass(frozen=True)
class StageReport:
    """One stage of a shipment, as transport announced it (``shipment.status_changed``)."""

    order_id: UUID
    shipment_id: str
    status: str
    message: str
    timestamp: datetime


@dataclass(frozen=True)
class StageRecorded:
    """A stage recorded now: its tracking entry and the notification the customer gets (None
    for a stage not mailed). ``shop_tell_stage`` tells the shop about it."""

    report: StageReport
    entry: TrackingEntry
    notification: CustomerNotification | None


@transaction.atomic(savepoint=False)
def tracking_record_stage(
    *, order_id: UUID, shipment_id: str, status: str, message: str, timestamp: datetime
) -> TrackingEntry | None:
    """Record one stage of a shipment and tell the shop (and, for the stages a customer hears
    of, ``MAILED_STAGES``, the customer). A repeated stage changes nothing, and the record's
    status only moves up (a late lower stage is recorded, not made current)."""
    report = StageReport(order_id=order_id, shipment_id=shipment_id, status=status, message=message,
                         timestamp=timestamp)
    recorded = tracking_stages_record([report])[0]
    if recorded is None:
        return None
    shop_tell_stage(recorded)
    return recorded.entry


@transaction.atomic(savepoint=False)
def tracking_stages_record(reports: Sequence[StageReport]) -> list[StageRecorded | None]:
    """Record stages of shipments, several at once (a worker's batch), with set-based statements;
    for each report, what was recorded (None: a stage recorded before, or twice in ``reports``).
    The caller tells the shop about each one (``shop_tell_stage``).

    Locks, each set in one statement in primary-key order: the tracking records, then the
    contacts (``support.locks``). A record or contact not there yet is inserted first (conflicts
    ignored, in key order), so two workers recording the same new shipment wait for each other's
    insert, never in a cycle.
    """
    if not reports:
        return []
    records = _tracking_records_locked(reports)
    statuses = {report.status for report in reports}
    recorded_before = set(TrackingEntry.objects.filter(record__in=records.values(), status__in=statuses)
                          .values_list("record_id", "status"))
    now = timezone.now()
    entries: list[TrackingEntry | None] = []
    moved: dict[int, str] = {}  # record id -> its new status
    for report in reports:
        record = records[report.shipment_id]
        if (record.pk, report.status) in recorded_before:
            entries.append(None)
            continue
        recorded_before.add((record.pk, report.status))
        entries.append(TrackingEntry(record=record, status=report.status, message=report.message,
                                     timestamp=report.timestamp, recorded_at=now))
        if stage_rank(report.status) > stage_rank(record.status):
            record.status = report.status
            moved[record.pk] = report.status
    TrackingEntry.objects.bulk_create([entry for entry in entries if entry is not None])
    for status in set(moved.values()):  # forward only, and under the records' locks
        TrackingRecord.objects.filter(pk__in=[pk for pk, to in moved.items() if to == status]).update(
            status=status, updated_at=now)
    mailed = [_Wanted(order_id=report.order_id, status=report.status, shipment_id=report.shipment_id,
                      details={"timestamp": report.timestamp.isoformat()})
              for report, entry in zip(reports, entries, strict=True)
              if entry is not None and report.status in MAILED_STAGES]
    notifications = _notifications_add(mailed, _contacts_locked({w.order_id for w in mailed}) if mailed else {})
    return [None if entry is None else StageRecorded(report=report, entry=entry,
                                                      notification=notifications.get((report.order_id, report.status)))
            for report, entry in zip(reports, entries, strict=True)]


def shop_tell_stage(recorded: StageRecorded) -> None:
    """Tell the shop what the customer now knows of the delivery. Caller holds the transaction
    that recorded the stage (``tracking_stages_record``)."""
    order_id, shipment_id, status = recorded.report.order_id, recorded.report.shipment_id, recorded.report.status
    message, timestamp, notification = recorded.report.message, recorded.report.timestamp, recorded.notification
    outbox_emit(
        CustomerNotified(order_id=order_id, shipment_id=shipment_id,
                         status=cast(ShipmentStage, status),  # a shipment.status_changed's, checked by its contract
                         message=message,
                         timestamp=timestamp, notification_id=notification.pk if notification else None),
        queue=CUSTOMER_NOTIFICATIONS, correlation_id=order_id, producer=PRODUCER,
    )


def _tracking_records_locked(reports: Sequence[StageReport]) -> dict[str, TrackingRecord]:
    """The tracking record of every shipment in ``reports``, locked; a shipment's first stage
    creates it (at the lowest stage reported, so that the record's status moves up from there)."""
    first: dict[str, StageReport] = {}
    for report in sorted(reports, key=lambda r: stage_rank(r.status)):
        first.setdefault(report.shipment_id, report)
    TrackingRecord.objects.bulk_create(
        [TrackingRecord(shipment_id=shipment_id, order_id=first[shipment_id].order_id, status=first[shipment_id].status)
         for shipment_id in sorted(first)], ignore_conflicts=True)
    return {record.shipment_id: record for record in tracking_records_for_update(first)}


@dataclass(frozen=True)
class _Wanted:
    """A notification to write once: of ``status`` for ``order_id``."""

    order_id: UUID
    status: str
    shipment_id: str = ""
    details: dict[str, Any] | None = None


def _notifications_add(wanted: Sequence[_Wanted], contacts: dict[UUID, CustomerContact]
                       ) -> dict[tuple[UUID, str], CustomerNotification]:
    """``_notification_add`` for many orders at once: each notification written once (one
    statement reads those written before, one writes the new ones), mailed right after the
    caller's transaction commits. Caller holds the orders' contact locks (``_contacts_locked``).
    Returns them by (order id, status)."""
    if not wanted:
        return {}
    found = {(n.order_id, n.status): n for n in CustomerNotification.objects.filter(
        order_id__in={w.order_id for w in wanted}, status__in={w.status for w in wanted})}
    new: list[CustomerNotification] = []
    for want in wanted:
        key = (want.order_id, want.status)
        if key in found:
            continue
        contact = contacts[want.order_id]
        found[key] = CustomerNotification(
            order_id=want.order_id, status=want.status, shipment_id=want.shipment_id, recipient=contact.email,
            details=want.details or {},
            subject=subject_render(status=want.status, order_id=want.order_id,
                                   language=contact.language or settings.CUSTOMER_LANGUAGE_DEFAULT))
        new.append(found[key])
    CustomerNotification.objects.bulk_create(new)
    to_mail = [n.pk for n in new if n.recipient]
    if to_mail:
        transaction.on_commit(partial(notifications_send_now, notification_ids=to_mail))
    return found


@transaction.atomic(savepoint=False)
def customer_tell_order_outcome(*, order_id: UUID, outcome: Outcome, message: str) -> CustomerNotification:
    """Tell the customer their order ended without delivery (cancelled, payment failed). Once."""
    return _notification_add(order_id=order_id, status=outcome, contact=_contact_locked(order_id),
                             details={"message": message})


@transaction.atomic(savepoint=False)
def customer_tell_order_paid(*, order_id: UUID) -> CustomerNotification:
    """Tell the customer their order is paid and confirmed (the warehouse started picking it). Once."""
    return customer_tell_orders_paid([order_id])[order_id]


@transaction.atomic(savepoint=False)
def customer_tell_orders_paid(order_ids: Sequence[UUID]) -> dict[UUID, CustomerNotification]:
    """``customer_tell_order_paid`` for several orders at once: their contacts locked in one
    statement, the notifications read and written in one statement each."""
    found = _notifications_add([_Wanted(order_id=order_id, status="paid") for order_id in order_ids],
                               _contacts_locked(order_ids))
    return {order_id: found[(order_id, "paid")] for order_id in order_ids}


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


def _contacts_locked(order_ids: Iterable[UUID]) -> dict[UUID, CustomerContact]:
    """The contacts of these orders, locked in one statement in primary-key order; empty ones for
    those that have not arrived yet (inserted first, in key order, conflicts ignored)."""
    order_ids = sorted(set(order_ids))
    CustomerContact.objects.bulk_create([CustomerContact(order_id=order_id) for order_id in order_ids],
                                        ignore_conflicts=True)
    return {contact.order_id: contact for contact in customer_contacts_for_update(order_ids)}


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

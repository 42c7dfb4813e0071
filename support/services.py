"""Customer service writes: the tracking history and telling the customer."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.rows import row_insert, row_lock, row_update
from config.transactions import service_transaction
from messaging.outbox import outbox_emit
from messaging.topology import CUSTOMER_NOTIFICATIONS
from shop.selectors import order_contact_get
from support.models import (
    TRACKING_RANK,
    CustomerNotification,
    TrackingEntry,
    TrackingRecord,
)

PRODUCER = "support"
logger = logging.getLogger(__name__)

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


@service_transaction
def tracking_record_stage(
    *, order_id: UUID, shipment_id: str, status: str, message: str, timestamp: datetime
) -> TrackingEntry | None:
    """Record one stage of a shipment and tell the customer. A repeated stage changes nothing."""
    record, created = row_lock(TrackingRecord, shipment_id=shipment_id), False
    if record is None:  # the shipment's first stage: this transaction writes (and so locks) its record
        record = row_insert(TrackingRecord(shipment_id=shipment_id, order_id=order_id, status=status),
                            ignore_conflicts=True)
        created = record.pk is not None
        if not created:  # another worker wrote it meanwhile (the insert waited for that to commit)
            record = row_lock(TrackingRecord, shipment_id=shipment_id)
    # The record's row lock orders the stages of one shipment. Its status is the highest
    # stage recorded so far, so a stage above it (the usual case: stages arrive in order)
    # cannot have been recorded yet; only a stage at or below it needs looking up.
    rank = TRACKING_RANK[status]
    if (not created and rank <= TRACKING_RANK.get(record.status, -1)
            and TrackingEntry.objects.filter(record=record, status=status).exists()):
        return None
    entry = row_insert(TrackingEntry(record=record, status=status, message=message, timestamp=timestamp))
    if not created and rank > TRACKING_RANK.get(record.status, -1):
        record.status = status
        row_update(record, ["status", "updated_at"])
    notification = _notification_create(order_id=order_id, shipment_id=shipment_id, status=status, message=message)
    outbox_emit(
        queue=CUSTOMER_NOTIFICATIONS, type="customer.notified", correlation_id=order_id, producer=PRODUCER,
        payload={
            "order_id": str(order_id),
            "shipment_id": shipment_id,
            "status": status,
            "message": message,
            "timestamp": timestamp.isoformat(),
            "notification_id": notification.pk,
        },
    )
    return entry


@service_transaction
def customer_tell_order_outcome(*, order_id: UUID, outcome: str, message: str) -> CustomerNotification:
    """Tell the customer their order ended without delivery (cancelled, payment failed). Once."""
    contact = order_contact_get(order_id=order_id)
    name, email = contact if contact else ("customer", "")
    body = f"Hello {name},\n\n{OUTCOME_TEXT[outcome]}\n" + (f"\nDetails: {message}\n" if message else "")
    return _notification_get_or_create(order_id=order_id, shipment_id="", status=outcome, recipient=email,
                                       subject=f"{STAGE_SUBJECTS[outcome]} ({str(order_id)[:8]})", body=body)


def _notification_create(*, order_id: UUID, shipment_id: str, status: str, message: str) -> CustomerNotification:
    """The notification of a new shipment stage, mailed by ``notifications_send``. Caller holds
    the tracking record's lock and has just recorded the stage, so this (order, stage) has no
    notification yet."""
    contact = order_contact_get(order_id=order_id)
    name, email = contact if contact else ("customer", "")
    return row_insert(CustomerNotification(
        order_id=order_id, shipment_id=shipment_id, status=status, recipient=email,
        subject=f"{STAGE_SUBJECTS[status]} ({shipment_id})",
        body=f"Hello {name},\n\n{message}.\n\nFollow your shipment: /track/{shipment_id}/\n",
    ))


def _notification_get_or_create(*, order_id: UUID, shipment_id: str, status: str, recipient: str, subject: str,
                                 body: str) -> CustomerNotification:
    notification, _ = CustomerNotification.objects.get_or_create(
        order_id=order_id, status=status,
        defaults={"shipment_id": shipment_id, "recipient": recipient, "subject": subject, "body": body},
    )
    return notification


# A failed mail is tried again after 10 s, 20 s, 40 s, ... and given up after this many tries
# (it stays in the admin, unsent, with its last error).
NOTIFICATION_SEND_ATTEMPTS = 6
NOTIFICATION_RETRY_SECONDS = 10


def notifications_send(*, limit: int = 100) -> int:
    """Mail the notifications not sent yet, oldest first, over one mail connection (qcluster
    calls it every half second). Returns how many were sent.

    The rows are locked (``SKIP LOCKED``) while they are mailed, so two schedulers never
    mail the same one; a mail that fails is tried again later, with back-off. A crash
    between the mail and the commit mails that one again on the next tick: at least once.
    """
    now = timezone.now()
    with transaction.atomic():
        pending = list(
            CustomerNotification.objects.select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True, send_attempts__lt=NOTIFICATION_SEND_ATTEMPTS)
            .filter(Q(next_send_at__isnull=True) | Q(next_send_at__lte=now))
            .exclude(recipient="")
            .order_by("id")[:limit]
        )
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
            try:
                for notification in pending:
                    try:
                        EmailMessage(notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL,
                                     [notification.recipient], connection=mail).send()
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

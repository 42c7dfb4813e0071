"""Customer service writes: the tracking history and telling the customer."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

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
    record, _ = TrackingRecord.objects.select_for_update().get_or_create(
        shipment_id=shipment_id, defaults={"order_id": order_id, "status": status}
    )
    # The record's row lock orders the stages of one shipment, so a plain look decides
    # whether this stage is new (no get_or_create's savepoint and retry on every message).
    if TrackingEntry.objects.filter(record=record, status=status).exists():
        return None
    entry = TrackingEntry.objects.create(record=record, status=status, message=message, timestamp=timestamp)
    if TRACKING_RANK[status] >= TRACKING_RANK.get(record.status, -1):
        record.status = status
        record.save(update_fields=["status", "updated_at"])
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
    """The notification of a new shipment stage. Caller holds the tracking record's lock and
    has just recorded the stage, so this (order, stage) has no notification yet."""
    contact = order_contact_get(order_id=order_id)
    name, email = contact if contact else ("customer", "")
    notification = CustomerNotification.objects.create(
        order_id=order_id, shipment_id=shipment_id, status=status, recipient=email,
        subject=f"{STAGE_SUBJECTS[status]} ({shipment_id})",
        body=f"Hello {name},\n\n{message}.\n\nFollow your shipment: /track/{shipment_id}/\n",
    )
    _notification_send_on_commit(notification)
    return notification


def _notification_get_or_create(*, order_id: UUID, shipment_id: str, status: str, recipient: str, subject: str,
                                 body: str) -> CustomerNotification:
    notification, created = CustomerNotification.objects.get_or_create(
        order_id=order_id, status=status,
        defaults={"shipment_id": shipment_id, "recipient": recipient, "subject": subject, "body": body},
    )
    if created:
        _notification_send_on_commit(notification)
    return notification


def _notification_send_on_commit(notification: CustomerNotification) -> None:
    """Sent after commit, so a rolled-back stage never emails anyone."""
    if notification.recipient:
        transaction.on_commit(lambda: _notification_deliver(notification))


def _notification_deliver(notification: CustomerNotification) -> None:
    if not notification.recipient:
        return
    try:
        send_mail(notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL, [notification.recipient])
    except Exception:  # noqa: BLE001 - a mail outage must not fail the stage; sent_at stays empty
        logger.exception("could not send notification %s", notification.pk)
        return
    CustomerNotification.objects.filter(pk=notification.pk, sent_at__isnull=True).update(sent_at=timezone.now())

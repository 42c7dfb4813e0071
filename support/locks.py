"""Every row lock customer service takes.

A shipment's tracking record orders its stages; an order's contact orders the addressing of
its notifications; the notifications being mailed are locked so that two senders never mail
the same one. A stage takes the record's lock, then the contact's.

Lock order (every transaction of this app keeps it, so two workers never wait for each other
in a cycle): tracking records, then contacts, then notifications; several rows of one table in
one statement, in primary-key order.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from django.db.models import Q, QuerySet

from support.models import CustomerContact, CustomerNotification, TrackingRecord


def tracking_records_for_update(shipment_ids: Iterable[str]) -> QuerySet[TrackingRecord]:
    """The tracking records of these shipments, locked in one statement in primary-key order."""
    return TrackingRecord.objects.select_for_update().filter(shipment_id__in=list(shipment_ids)).order_by("pk")


def customer_contacts_for_update(order_ids: Iterable[UUID]) -> QuerySet[CustomerContact]:
    """The contacts of these orders, locked in one statement in primary-key order."""
    return CustomerContact.objects.select_for_update().filter(order_id__in=list(order_ids)).order_by("pk")


def customer_contact_for_update(order_id: UUID) -> CustomerContact | None:
    """The order's contact row, locked until the end of the caller's transaction."""
    return CustomerContact.objects.select_for_update().filter(order_id=order_id).order_by("pk").first()


def notifications_to_mail_for_update(
    *, now: datetime, attempts_below: int, limit: int, ids: Iterable[int] | None = None
) -> QuerySet[CustomerNotification]:
    """The oldest notifications due for mailing (of ``ids``, if given), locked; ones another
    sender holds are skipped."""
    due = CustomerNotification.objects.select_for_update(skip_locked=True)
    if ids is not None:
        due = due.filter(pk__in=list(ids))
    return (
        due.filter(sent_at__isnull=True, send_attempts__lt=attempts_below)
        .filter(Q(next_send_at__isnull=True) | Q(next_send_at__lte=now))
        .exclude(recipient="")
        .order_by("pk")[:limit]
    )

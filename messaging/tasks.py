"""Messaging housekeeping (a django-q2 schedule, run daily by qcluster)."""

from datetime import timedelta

from django.conf import settings

from messaging.heartbeats import heartbeats_prune
from messaging.services import messages_prune


def messages_prune_daily() -> tuple[int, int]:
    heartbeats_prune(older_than=timedelta(days=1))  # processes gone for a day
    return messages_prune(older_than_days=settings.OUTBOX_RETENTION_DAYS)

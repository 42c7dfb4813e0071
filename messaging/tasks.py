"""Messaging housekeeping (a django-q2 schedule, run daily by qcluster)."""

from django.conf import settings

from messaging.services import messages_prune


def messages_prune_daily() -> tuple[int, int]:
    return messages_prune(older_than_days=settings.OUTBOX_RETENTION_DAYS)

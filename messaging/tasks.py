"""Messaging housekeeping (django-q2 schedules, run by qcluster)."""

from datetime import timedelta

from django.conf import settings

from messaging.heartbeats import heartbeats_prune
from messaging.history import history_partitions_ensure, prune_describe
from messaging.services import messages_prune


def messages_prune_daily() -> str:
    heartbeats_prune(older_than=timedelta(days=1))  # processes gone for a day
    history_partitions_ensure()  # the days ahead, should the hourly run have failed
    return prune_describe(messages_prune(older_than_days=settings.OUTBOX_RETENTION_DAYS))


def history_partitions_hourly() -> int:
    """Make the history's partitions for the days ahead (PostgreSQL); how many were made."""
    return len(history_partitions_ensure())

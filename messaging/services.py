"""Messaging writes that people trigger: re-driving dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from messaging.locks import dead_letters_for_update
from messaging.models import OutboxMessage, ProcessedMessage
from messaging.topology import work_queues


@transaction.atomic
def dead_letters_redrive(*, dead_letter_ids: Iterable[int]) -> tuple[int, list[str]]:
    """Send parked messages back to their queue once each, through the outbox.

    The re-driven copy gets a new message id (the parked one was never processed, so no
    effect can repeat) and names the parked one as its cause. Returns (count, problems).
    """
    redriven = 0
    problems: list[str] = []
    for letter in dead_letters_for_update(dead_letter_ids):
        if letter.redriven_at is not None:
            problems.append(f"#{letter.pk} was already re-driven at {letter.redriven_at:%Y-%m-%d %H:%M:%S}")
            continue
        if letter.queue not in work_queues() or not letter.type:
            problems.append(f"#{letter.pk} has no known queue/type to go back to")
            continue
        try:
            payload = json.loads(letter.body)
        except json.JSONDecodeError:
            problems.append(f"#{letter.pk} body is not JSON; fix the producer, it cannot be re-driven")
            continue
        if not isinstance(payload, dict):
            problems.append(f"#{letter.pk} body is not a JSON object")
            continue
        OutboxMessage.objects.create(
            queue=letter.queue, type=letter.type, correlation_id=letter.correlation_id,
            causation_id=letter.message_id, producer="redrive", payload=payload,
        )
        letter.redriven_at = timezone.now()
        letter.save(update_fields=["redriven_at"])
        redriven += 1
    return redriven, problems


def messages_prune(*, older_than_days: float, chunk: int = 10_000) -> tuple[int, int]:
    """Delete published outbox rows and processed records older than the retention, in chunks
    (short transactions: the relay and the consumers keep going). Never touches unpublished rows.

    A processed record must outlive any redelivery of its message, so the retention is days,
    not minutes. Returns (outbox rows, processed records) deleted.
    """
    cutoff = timezone.now() - timedelta(days=older_than_days)
    totals = []
    for queryset in (OutboxMessage.objects.filter(published_at__lt=cutoff),
                     ProcessedMessage.objects.filter(processed_at__lt=cutoff)):
        deleted = 0
        while True:
            ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:chunk])
            if not ids:
                break
            deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]
        totals.append(deleted)
    return totals[0], totals[1]

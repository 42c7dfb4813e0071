"""Messaging writes that people trigger: editing and re-driving dead letters, pruning."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import timedelta

import pydantic
from django.db import transaction
from django.utils import timezone

from config.errors import DomainError
from contracts import contract_for
from messaging.bounded_json import JSONTooDeep, json_loads_bounded
from messaging.history import PruneResult, history_prune
from messaging.locks import dead_letters_for_update
from messaging.models import DeadLetter, DeadLetterChange, OutboxMessage
from messaging.payloads import payload_json
from messaging.topology import work_queues


@transaction.atomic
def dead_letters_redrive(*, dead_letter_ids: Iterable[int], by: str = "") -> tuple[int, list[str]]:
    """Send parked messages back to their queue once each, through the outbox; each re-drive
    is recorded in the letter's trail (``by``: who asked).

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
            payload = json_loads_bounded(letter.body)
        except JSONTooDeep as exc:
            problems.append(f"#{letter.pk} body is JSON {exc}; edit it before re-driving")
            continue
        except json.JSONDecodeError:
            problems.append(f"#{letter.pk} body is not JSON; fix the producer, it cannot be re-driven")
            continue
        if not isinstance(payload, dict):
            problems.append(f"#{letter.pk} body is not a JSON object")
            continue
        trace = letter.headers.get("traceparent") if isinstance(letter.headers, dict) else ""
        OutboxMessage.objects.create(
            queue=letter.queue, type=letter.type, correlation_id=letter.correlation_id,
            causation_id=letter.message_id, producer="redrive", payload=payload,
            traceparent=trace if isinstance(trace, str) and len(trace) <= 55 else "",  # the order's trace goes on
        )
        letter.redriven_at = timezone.now()
        letter.save(update_fields=["redriven_at"])
        DeadLetterChange.objects.create(dead_letter=letter, action=DeadLetterChange.Action.REDRIVEN, by=by,
                                        body_before=letter.body, body_after=letter.body)
        redriven += 1
    return redriven, problems


@transaction.atomic
def dead_letter_edit(*, dead_letter_id: int, body: str, by: str) -> DeadLetter:
    """Replace a parked message's payload (before it is re-driven), once it keeps its type's
    contract; the edit is recorded in the letter's trail with the body before and after.

    DomainError (field ``body``) when the body is not a JSON object, breaks the contract, or the
    letter was re-driven already (what was sent stays as it was sent).
    """
    letter = next(iter(dead_letters_for_update([dead_letter_id])), None)
    if letter is None:
        raise DomainError(f"dead letter {dead_letter_id} does not exist", field="dead_letter")
    if letter.redriven_at is not None:
        raise DomainError("this message was re-driven already; its payload stays as it was sent", field="body")
    try:
        payload = json_loads_bounded(body)
    except JSONTooDeep as exc:
        raise DomainError(f"the payload is {exc}", field="body") from None
    except json.JSONDecodeError as exc:
        raise DomainError(f"not JSON: {exc}", field="body") from None
    if not isinstance(payload, dict):
        raise DomainError("the payload must be a JSON object", field="body")
    _subject_kept(letter, payload)
    try:
        contract = contract_for(letter.type)
    except KeyError:
        raise DomainError(f"no contract for message type {letter.type!r} (see contracts/messages.py)",
                          field="body") from None
    try:
        checked = payload_json(contract.model_validate(payload))
    except pydantic.ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in exc.errors())
        raise DomainError(f"breaks the {letter.type} contract: {errors}", field="body") from None
    before, letter.body = letter.body, json.dumps(checked, ensure_ascii=False)
    if letter.body != before:
        letter.save(update_fields=["body"])
        DeadLetterChange.objects.create(dead_letter=letter, action=DeadLetterChange.Action.EDITED, by=by,
                                        body_before=before, body_after=letter.body)
    return letter


# What a message is about: an edit may mend how it says it, never whom it concerns.
SUBJECT_FIELDS = ("order_id", "payment_id", "shipment_id")


def _subject_kept(letter: DeadLetter, payload: dict) -> None:
    """DomainError when the edited ``payload`` names another order, payment or shipment than the
    parked message did (its order is also its correlation id): a cancellation re-aimed at a
    delivered order refunded that order's payment."""
    try:
        before = json_loads_bounded(letter.body)
    except ValueError:
        before = {}
    before = before if isinstance(before, dict) else {}
    if letter.correlation_id:
        before = {**before, "order_id": letter.correlation_id}
    for name in SUBJECT_FIELDS:
        if name in before and str(payload.get(name)) != str(before[name]):
            raise DomainError(f"{name} may not change (the message is about {name} {before[name]}); park a "
                              f"new message instead", field="body")


def messages_prune(*, older_than_days: float) -> PruneResult:
    """Let the history older than the retention go (``messaging.history``): on PostgreSQL whole
    day partitions, detached and dropped, never one holding something pending; on SQLite
    published outbox rows and processed records by DELETE. Unpublished rows always stay.

    A processed record must outlive any redelivery of its message, so the retention is days,
    not minutes.
    """
    return history_prune(older_than=timedelta(days=older_than_days))

"""The ``Idempotency-Key`` request header: the same key and body within 24 hours answer the
first answer again and do the work once, however many arrive at once.

All of it is here: how the header is read and documented, the window, and the store of first
answers (``shop.models.IdempotentRequest``, per user and key).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from config.errors import Conflict, Unprocessable
from shop.models import IdempotentRequest

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe and the IETF draft allow
WINDOW = timedelta(hours=24)
WINDOW_TEXT = f"{WINDOW.total_seconds() / 3600:g} hours"
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description=(f"A key of your choice (1-255 visible ASCII characters, e.g. a UUID). The same key and body "
                 f"within {WINDOW_TEXT} return the first answer (with `{REPLAYED_HEADER}: true`) and "
                 f"do the work once, however many arrive at once; the same key with another body is 422."),
)

REUSED_KEY = OpenApiResponse(
    {"type": "object", "additionalProperties": True},
    description=f"The Idempotency-Key was used for another request in the last {WINDOW_TEXT}.")


def idempotency_key(request: Request) -> str | None:
    """The request's key, None without one; a malformed one is a 400 naming the header."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not KEY_RE.match(raw):
        raise ValidationError({HEADER: ["must be 1-255 visible ASCII characters (no spaces)."]})
    return raw


@dataclass(frozen=True)
class Answer:
    """What a request answered: kept for an ``Idempotency-Key`` and given again."""

    status: int
    body: Any
    replayed: bool = False


def request_fingerprint(*, operation: str, body: Any) -> str:
    """The same operation with the same JSON body (whatever its keys' order) -> the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{operation}\n{canonical}".encode()).hexdigest()


@transaction.atomic
def request_once(*, user: User, key: str | None, fingerprint: str, perform: Callable[[], Answer]) -> Answer:
    """``perform()`` once per user and ``key`` in the WINDOW; the first answer again after that.

    The key's row is inserted before the work, in its transaction: a duplicate arriving
    meanwhile waits on the unique (user, key) until that transaction ends, then answers what
    it committed. Work that fails rolls back with its row, so a retry does it again. The same
    key with another fingerprint is Unprocessable (422). Without a key, just ``perform()``.
    """
    if key is None:
        return perform()
    now = timezone.now()
    IdempotentRequest.objects.filter(user=user, key=key, created_at__lt=now - WINDOW).delete()
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(user=user, key=key, fingerprint=fingerprint, created_at=now)
    except IntegrityError:
        first = IdempotentRequest.objects.filter(user=user, key=key).first()
        if first is None:  # expired and deleted by a concurrent duplicate a moment ago
            raise Conflict("a request with this Idempotency-Key is in progress; retry",
                           field=HEADER) from None
        if first.fingerprint != fingerprint:
            raise Unprocessable(f"this key was used for another request (another body or endpoint) in the last "
                                f"{WINDOW_TEXT}; use a new key", field=HEADER) from None
        if first.response_status is None:  # committed with its work and answer: not seen without one
            raise Conflict("a request with this Idempotency-Key is in progress; retry",
                           field=HEADER) from None
        return Answer(first.response_status, first.response_body, replayed=True)
    answer = perform()
    body = json.loads(json.dumps(answer.body, cls=DjangoJSONEncoder))  # as a replay will read it
    record.response_status, record.response_body = answer.status, body
    record.save(update_fields=["response_status", "response_body"])
    return Answer(answer.status, body)


def idempotent_requests_prune(*, now: datetime | None = None) -> int:
    """Forget the keys older than the WINDOW; returns how many."""
    cutoff = (now or timezone.now()) - WINDOW
    return IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()[0]

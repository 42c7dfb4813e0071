"""The ``Idempotency-Key`` request header: how it is read, and how it is documented.

What a key does (the first answer again, one order however many arrive at once) is the
owning app's service (``shop.services.request_once``); this module only reads the header.
"""

from __future__ import annotations

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

HEADER = "Idempotency-Key"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")  # visible ASCII, as Stripe and the IETF draft allow
WINDOW_HOURS = 24
REPLAYED_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
    description=(f"A key of your choice (1-255 visible ASCII characters, e.g. a UUID). The same key and body "
                 f"within {WINDOW_HOURS} hours return the first answer (with `{REPLAYED_HEADER}: true`) and "
                 f"do the work once, however many arrive at once; the same key with another body is 422."),
)


def idempotency_key(request: Request) -> str | None:
    """The request's key, None without one; a malformed one is a 400 naming the header."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    if not KEY_RE.match(raw):
        raise ValidationError({HEADER: ["must be 1-255 visible ASCII characters (no spaces)."]})
    return raw

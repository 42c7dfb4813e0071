"""Error shapes the API answers with, for the OpenAPI schema."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

DETAIL = inline_serializer("ErrorDetail", fields={"detail": serializers.CharField()})

VALIDATION_ERROR = OpenApiResponse(
    response={
        "type": "object",
        "description": "Each bad field (or non_field_errors / detail) with its messages.",
        "additionalProperties": True,
    },
    description="Invalid input: every bad field is named.",
)
UNAUTHORIZED = OpenApiResponse(DETAIL, description="No or invalid credentials.")
FORBIDDEN = OpenApiResponse(DETAIL, description="Not allowed.")
NOT_FOUND = OpenApiResponse(DETAIL, description="Not found (or not yours).")
CONFLICT = OpenApiResponse(DETAIL, description="Not possible in the current state.")
TOO_LARGE = OpenApiResponse(DETAIL, description="Request body too large.")
THROTTLED = OpenApiResponse(DETAIL, description="Too many requests; see Retry-After.")

COMMON_ERRORS = {400: VALIDATION_ERROR, 401: UNAUTHORIZED, 403: FORBIDDEN, 413: TOO_LARGE, 429: THROTTLED}


V1_PREFIX = "/api/v1/"


def one_copy_of_each_endpoint(endpoints: list, **kwargs) -> list:
    """drf-spectacular's preprocessing hook: ``/api/v1/`` is an alias of ``/api/`` (the same views),
    so the schema lists each endpoint once, under ``/api/``."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith(V1_PREFIX)]

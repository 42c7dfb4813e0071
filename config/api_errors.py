"""One JSON error shape for the whole API, and no 5xx for anything a client can send."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import DomainError

logger = logging.getLogger(__name__)


DATABASE_AWAY_RETRY_SECONDS = 5


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, DomainError):
        response = Response(exc.as_dict(), status=exc.status_code)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away (restarted, failed over, out of connections): the request's
        # transaction did not commit. Worth a retry, not a 500.
        logger.warning("database unavailable: %r", exc)
        response = Response(
            {"detail": "The database is unavailable for a moment; the request was not carried out. Try again "
                       "shortly (with the same Idempotency-Key, to be sure of one order)."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = str(DATABASE_AWAY_RETRY_SECONDS)
        return response
    handled = drf_exception_handler(exc, context)
    if handled is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response({"detail": "Internal error; it has been logged."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return handled


def _wants_json(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """JSON 404 under /api/, Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if _wants_json(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    from django.http import JsonResponse
    from django.views.defaults import server_error as html_server_error

    if _wants_json(request):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return html_server_error(request)


def bad_request(request, exception=None):
    from django.http import JsonResponse
    from django.views.defaults import bad_request as html_bad_request

    if _wants_json(request):
        return JsonResponse({"detail": "Bad request."}, status=400)
    return html_bad_request(request, exception)

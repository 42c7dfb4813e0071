"""The gateway's own middleware: request ids and request-size limits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.request_context import current_request_id

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class RequestIdMiddleware:
    """Give every request a server-made id (``X-Request-ID`` on the response).

    The id is a UUID and becomes the correlation id of what the request causes: an order
    placed by this request gets it as its order id. A client's own ``X-Request-ID`` is
    never trusted as ours; when it is well-formed it is echoed as ``X-Client-Request-ID``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        request.request_id = request_id
        token = current_request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        response["X-Request-ID"] = request_id
        client_id = request.headers.get("X-Request-ID", "")
        if client_id and CLIENT_ID_RE.match(client_id):
            response["X-Client-Request-ID"] = client_id
        return response


class RequestSizeLimitMiddleware:
    """Refuse bodies larger than API_MAX_BODY_BYTES before anything reads them (413)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw)
        except ValueError:
            return JsonResponse({"detail": "Content-Length is not a number."}, status=400)
        if length < 0:
            return JsonResponse({"detail": "Content-Length is negative."}, status=400)
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return JsonResponse({"detail": f"Request body too large: {length} bytes, limit {limit}."}, status=413)
        return self.get_response(request)

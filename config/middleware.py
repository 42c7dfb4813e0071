"""The gateway's own middleware: the request's trace span, request ids and request-size limits."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from config.request_context import current_request_id

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")


class TraceMiddleware:
    """Each request in an OpenTelemetry server span (continuing a client's W3C ``traceparent``).

    What the request writes to the outbox carries this span's trace context, so every message
    that follows from the request shares its trace id (``messaging.tracing``). The span is named
    after the route once it is resolved (``POST api/orders/``), never after the raw path.
    """

    tracer = trace.get_tracer("logistics.http")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        context = propagate.extract({"traceparent": request.headers.get("traceparent", "")[:55]})
        with self.tracer.start_as_current_span(request.method or "HTTP", context=context, kind=SpanKind.SERVER,
                                               attributes={"http.request.method": request.method or ""}) as span:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None and match.route:
                span.update_name(f"{request.method} {match.route}")
                span.set_attribute("http.route", match.route)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response


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

"""The gateway's own middleware: the request's trace span, request ids and request-size limits."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from config.client_address import client_address
from config.request_context import current_request_id
from config.throttling import login_budget_spend

access_log = logging.getLogger("access")

CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# A header's value may hold a tab (RFC 9110), never another control character.
HEADER_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _refuse(request: HttpRequest, status: int, detail: str) -> HttpResponse:
    """A 4xx before any view runs: JSON under /api/, plain text elsewhere; on the course's API
    (TUTORIAL_API: every path is an endpoint) JSON in the course's shape, ``{"error": ...}``."""
    if settings.TUTORIAL_API:
        return JsonResponse({"error": detail}, status=status)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": detail}, status=status)
    return HttpResponse(f"{detail}\n", status=status, content_type="text/plain; charset=utf-8")


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
    """Give every request a server-made id (``X-Request-ID`` on the response), and log it.

    The id is a UUID and becomes the correlation id of what the request causes: an order
    placed by this request gets it as its order id. A client's own ``X-Request-ID`` is
    never trusted as ours; when it is well-formed it is echoed as ``X-Client-Request-ID``.
    The access log line names the client by ``config.client_address`` (gunicorn's own would
    name the proxy, or believe no forwarding header at all), never the query string.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        request.request_id = request_id  # type: ignore[attr-defined]  # for views and logs of this request
        token = current_request_id.set(request_id)
        started = time.monotonic()
        try:
            response = self.get_response(request)
        finally:
            current_request_id.reset(token)
        path = CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", request.path)
        access_log.info('%s "%s %s" %s %.1fms request_id=%s', client_address(request), request.method, path,
                        response.status_code, (time.monotonic() - started) * 1000, request_id)
        response["X-Request-ID"] = request_id
        client_id = request.headers.get("X-Request-ID", "")
        if client_id and CLIENT_ID_RE.match(client_id):
            response["X-Client-Request-ID"] = client_id
        return response


class InputHygieneMiddleware:
    """Refuse, before any view or database sees them, what no page or endpoint accepts:

    * control characters (U+0000-U+001F, U+007F) in the path or in any query name or value,
      decoded: a NUL reaching PostgreSQL is an error, the others are never meaningful in an id
      or a filter (400);
    * control characters other than a tab in any header's value (the token of ``Authorization``,
      the session cookie: both are looked up in the database) (400);
    * a body with no length (chunked transfer encoding): gunicorn hands it over and Django would
      read it as empty, so the request would silently lose its body (411).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if CONTROL_CHARACTERS.search(request.path_info):
            return _refuse(request, 400, "The path contains a control character.")
        for name, values in request.GET.lists():
            if CONTROL_CHARACTERS.search(name) or any(CONTROL_CHARACTERS.search(value) for value in values):
                return _refuse(request, 400, f"The query parameter {name!r} contains a control character.")
        for key, value in request.META.items():
            if (key.startswith("HTTP_") or key == "CONTENT_TYPE") and HEADER_CONTROL_CHARACTERS.search(value):
                header = key.removeprefix("HTTP_").replace("_", "-").title()
                return _refuse(request, 400, f"The header {header} contains a control character.")
        if (request.method in BODY_METHODS and not request.META.get("CONTENT_LENGTH")
                and "HTTP_TRANSFER_ENCODING" in request.META):
            return _refuse(request, 411, "A request body needs a Content-Length (chunked bodies are not accepted).")
        return self.get_response(request)


class PrivacyHeadersMiddleware:
    """``Cache-Control: no-store`` on every response that did not choose its own caching (API
    answers with orders and customers, the admin, the dashboard: nothing of them may stay in a
    browser's or a proxy's cache), and the ``Permissions-Policy``. Static files and the pages
    marked ``never_cache`` say their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
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
            return _refuse(request, 400, "Content-Length is not a number.")
        if length < 0:
            return _refuse(request, 400, "Content-Length is negative.")
        limit = settings.API_MAX_BODY_BYTES
        if length > limit:
            return _refuse(request, 413, f"Request body too large: {length} bytes, limit {limit}.")
        return self.get_response(request)


class ApiUtcMiddleware:
    """The JSON API answers in UTC (``...Z``/``+00:00``) whatever TIME_ZONE the pages are shown in:
    DRF writes datetimes in the active time zone, so the API's requests activate UTC."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(settings.API_UTC_PATH_PREFIXES):
            return self.get_response(request)
        with timezone.override(UTC):
            return self.get_response(request)


class LoginFormBudgetMiddleware:
    """The session login forms (the admin's, the browsable API's) spend the same request
    budget per client address as ``POST /api/auth/token/`` (429 with Retry-After once spent).

    django-axes counts failed logins; this counts attempts at all, so no login surface lets one
    address ask faster than the others (the forms answered about 63 attempts a minute before).
    """

    LOGIN_FORM_PATHS = frozenset({"/admin/login/", "/api-auth/login/"})

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in self.LOGIN_FORM_PATHS:
            retry_after = login_budget_spend(request)
            if retry_after is not None:
                response = _refuse(request, 429, f"Too many login attempts from this address; try again in "
                                                 f"{retry_after} seconds.")
                response["Retry-After"] = str(retry_after)
                return response
        return self.get_response(request)

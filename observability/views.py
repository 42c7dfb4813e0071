"""Thin views: the dashboard and its JSON, an order's journey, health checks, /metrics."""

from __future__ import annotations

import hmac
from datetime import datetime
from functools import wraps

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from config.client_address import client_address
from observability import selectors
from observability.metrics import metrics_render

WINDOW_MINUTES = (2, 5, 15, 60)
DEFAULT_WINDOW = 5


def staff_json(view):
    """Staff only, for JSON endpoints: 403 JSON to anyone else (no redirect to a login page)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        user = request.user
        if not (user.is_active and user.is_staff):
            return JsonResponse({"detail": "Staff only; log in at /admin/login/."}, status=403)
        return view(request, *args, **kwargs)

    return wrapped


def _window(request: HttpRequest) -> int:
    try:
        minutes = int(request.GET.get("minutes", DEFAULT_WINDOW))
    except ValueError:
        return DEFAULT_WINDOW
    return minutes if minutes in WINDOW_MINUTES else DEFAULT_WINDOW


# --- dashboard ---------------------------------------------------------------------------------
@require_GET
@never_cache
@staff_member_required
def dashboard_page(request: HttpRequest) -> HttpResponse:
    minutes = _window(request)
    data = selectors.dashboard_data(now=timezone.now(), minutes=minutes)
    return render(request, "observability/dashboard.html", {
        "data": data,
        "minutes": minutes,
        "windows": WINDOW_MINUTES,
        "worker_silent_seconds": f"{settings.WORKER_SILENT_SECONDS:g}",
        "config": {
            "dataUrl": reverse("observability:dashboard-data"),
            "pollMs": int(settings.DASHBOARD_POLL_SECONDS * 1000),
            "minutes": minutes,
            "journeyUrl": reverse("observability:journey", args=["__id__"]),
            "trackUrl": reverse("track", args=["__id__"]),
            "timeZone": settings.TIME_ZONE,
        },
    })


@require_GET
@never_cache
@staff_json
def dashboard_data(request: HttpRequest) -> JsonResponse:
    return JsonResponse(selectors.dashboard_data(now=timezone.now(), minutes=_window(request)))


# --- an order's journey -----------------------------------------------------------------------------
@require_GET
@never_cache
@staff_member_required
def journey_page(request: HttpRequest, order_id: str) -> HttpResponse:
    journey = selectors.order_journey(order_id=order_id)
    if journey is None:
        raise Http404("no such order")
    _add_timeline_bars(journey["hops"])
    _add_local_clock(journey)
    total_ms = journey["total_ms"]
    return render(request, "observability/journey.html", {
        "journey": journey, "total_seconds": total_ms / 1000 if total_ms is not None else None,
        "time_zone": settings.TIME_ZONE})


def _clock(iso: str | None) -> str:
    """An ISO time on the site's clock (TIME_ZONE, as the dashboard and the admin), to the ms."""
    if not iso:
        return ""
    return timezone.localtime(datetime.fromisoformat(iso)).strftime("%H:%M:%S.%f")[:12]


def _add_local_clock(journey: dict) -> None:
    for hop in journey["hops"]:
        hop["clock"] = _clock(hop["created_at"])
    for change in journey["status_history"]:
        change["clock"] = _clock(change["at"])
    for dead in journey["dead_letters"]:
        dead["clock"], dead["redriven_clock"] = _clock(dead["created_at"]), _clock(dead["redriven_at"])


def _add_timeline_bars(hops: list[dict]) -> None:
    """Each hop's place on the journey's time axis, in percent (for the HTML waterfall only)."""
    def t(iso):
        return datetime.fromisoformat(iso).timestamp() if iso else None

    moments = [t(h[k]) for h in hops for k in ("created_at", "due_at", "published_at", "handled_at") if h.get(k)]
    if not moments:
        return
    first, span = min(moments), (max(moments) - min(moments)) or 1.0

    def pct(x):
        return round((x - first) / span * 100, 2)

    for hop in hops:
        created, published, handled = t(hop["created_at"]), t(hop["published_at"]), t(hop["handled_at"])
        # a timer waits from written to due (drawn as waiting); the relay's time starts when it is due
        due = max(created, t(hop.get("due_at")) or created)
        hop["bar"] = {
            "start": pct(created),
            "due": pct(due),
            "wait": round(pct(due) - pct(created), 2) if due > created else None,
            "published": pct(published) if published else None,
            "relay": max(0.0, round(pct(published) - pct(due), 2)) if published else None,
            "queue": max(0.0, round(pct(handled) - pct(published), 2)) if published and handled else None,
        }


@require_GET
@never_cache
@staff_json
def journey_data(request: HttpRequest, order_id: str) -> JsonResponse:
    journey = selectors.order_journey(order_id=order_id)
    if journey is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    return JsonResponse(journey)


# --- health ---------------------------------------------------------------------------------------
@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Checks nothing else on purpose."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers SELECT 1 and the broker accepts a connection."""
    checks = {"database": selectors.check_database(), "broker": selectors.check_broker()}
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


# --- metrics -------------------------------------------------------------------------------------
def metrics_allowed(request: HttpRequest) -> bool:
    """Who may read /metrics (README "Seeing the flow"):

    * a scraper sending ``Authorization: Bearer <METRICS_TOKEN>`` when that setting is set;
    * a logged-in staff user;
    * a client whose address (``config.client_address``: the peer, or what a trusted proxy
      forwarded) is loopback (127.0.0.0/8, ::1), when METRICS_ALLOW_LOOPBACK is on (the
      default, except behind a TLS proxy). Forwarding headers from anyone else change nothing.
    """
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        if sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].strip().encode(), token.encode()):
            return True
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    return settings.METRICS_ALLOW_LOOPBACK and client_address(request).is_loopback


@require_safe
@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse("Forbidden: /metrics is for loopback, staff or the metrics token.\n",
                            status=403, content_type="text/plain; charset=utf-8")
    body, content_type = metrics_render()
    return HttpResponse(body, content_type=content_type)


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico; answer "nothing" instead of logging a 404 each time."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "max-age=86400"
    return response

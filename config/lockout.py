"""What a password login that django-axes locked out answers (its AXES_LOCKOUT_CALLABLE).

The API's JSON error shape under /api/ (the view's own 429, when it gave one), plain text on
the login pages; a Retry-After with the cool-off either way.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

MESSAGE = "too many failed logins; try again later"


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if request.path.startswith("/api/"):
        if original_response is not None and original_response.status_code == 429:
            return original_response
        response = JsonResponse({"detail": MESSAGE}, status=429)
    else:
        minutes = max(1, round(seconds / 60))
        response = HttpResponse(f"Too many failed logins: this account or address may try again in {minutes} "
                                f"minutes.\n", status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response

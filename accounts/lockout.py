"""Login lock-outs: what a password login that django-axes locked out answers (its
AXES_LOCKOUT_CALLABLE), and whose failures a successful login clears (its AXES_HANDLER).

The API's JSON error shape under /api/ (the view's own 429, when it gave one), plain text on
the login pages; a Retry-After with the cool-off either way.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

LOGIN_LOCKED = "too many failed logins; try again later"


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    if request.path.startswith("/api/"):
        if original_response is not None and original_response.status_code == 429:
            return original_response
        response: HttpResponse = JsonResponse({"detail": LOGIN_LOCKED}, status=429)
    else:
        minutes = max(1, round(seconds / 60))
        response = HttpResponse(f"Too many failed logins: this account or address may try again in {minutes} "
                                f"minutes.\n", status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response


class AccountOnlyResetHandler(AxesDatabaseHandler):
    """django-axes' database handler, except that a successful login clears only the failures
    recorded for the account that logged in.

    axes resets on success by every lockout parameter: with ``["username", "ip_address"]`` it
    deletes every failure from the client's address too, whichever account they were for. An
    attacker with an account of their own could then guess four passwords of a victim, log in to
    their own account from the same address and start again: 12 guesses against ``admin`` in
    11.4 s. Here the address keeps counting the others' failures until the cool-off ends.
    """

    def reset_user_attempts(self, request: HttpRequest, credentials: dict | None = None) -> int:
        username = get_client_username(request, credentials)
        if not username:
            return 0
        count, _ = AccessAttempt.objects.filter(username=username).delete()
        return count

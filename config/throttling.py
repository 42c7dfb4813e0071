"""Per-user throttles whose rates are read from settings when used (so tests and benchmarks can set them)."""

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle


class _SettingsRate:
    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)


class UserThrottle(_SettingsRate, UserRateThrottle):
    scope = "user"


class AnonThrottle(_SettingsRate, AnonRateThrottle):
    scope = "anon"


class OrderPlacementThrottle(_SettingsRate, UserRateThrottle):
    """Placing orders has its own, tighter budget per user."""

    scope = "orders"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)

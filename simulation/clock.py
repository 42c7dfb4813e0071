"""The simulated world's time: its delays, times ``SIM_TIME_SCALE``.

Only simulated delays scale (the actors' picking and driving; the simulated payment provider
applies the same factor to its latency). A real timeout, such as the shop's wait for a payment
answer, is never scaled. ``SIM_TIME_SCALE=0`` makes every simulated timer due at once, through
the same road (a timer, never an inline call).
"""

from __future__ import annotations

from django.conf import settings


def scaled(seconds: float) -> float:
    """A simulated delay in real seconds (``SIM_TIME_SCALE`` times ``seconds``)."""
    return seconds * settings.SIM_TIME_SCALE

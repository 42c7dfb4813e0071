"""``manage.py check --deploy``: a warning naming each part of the demo's world that is on.

Simulated actors and the simulated payment provider are off unless asked for; a deployment
that asks for them (or copied a demo's environment) hears about each by name.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def simulation_off(app_configs, **kwargs) -> list[Warning]:
    found = []
    if settings.SIM_ACTORS:
        found.append(Warning(
            "SIM_ACTORS is on: simulated warehouse staff and drivers pick and deliver every order.",
            hint="Unset SIM_ACTORS (or set it to 0) where people do these steps.", id="simulation.W001"))
    if settings.PAYMENT_PROVIDER == settings.SIMULATED_PAYMENT_PROVIDER:
        found.append(Warning(
            "PAYMENT_PROVIDER is the simulated payment provider: every order is 'paid' without money moving.",
            hint="Set PAYMENT_PROVIDER to your provider's adapter class.", id="simulation.W002"))
    return found

"""Payments' system checks: a deployment must name its payment provider.

There is no default provider: the only one in the code is the demo's simulated one, and a
deployment that forgot the variable would otherwise take orders and "capture" them at a fake
bank. Every management command (migrate, the workers, runserver) refuses to start instead,
naming the setting.
"""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

HINT = ("Set PAYMENT_PROVIDER to your provider's adapter class (a dotted path; payments/provider.py says "
        "what it answers), or to 'simulated' for the demo's simulated provider (never in production).")


@register()
def payment_provider_named(app_configs, **kwargs) -> list[Error]:
    if not settings.PAYMENT_PROVIDER:
        return [Error("PAYMENT_PROVIDER names no payment provider: orders could not be paid.",
                      hint=HINT, id="payments.E001")]
    try:
        import_string(settings.PAYMENT_PROVIDER)
    except ImportError as exc:
        return [Error(f"PAYMENT_PROVIDER names {settings.PAYMENT_PROVIDER!r}, which cannot be imported: {exc}",
                      hint=HINT, id="payments.E002")]
    return []

"""The payment provider behind a small interface, so that a real one can be plugged in
(settings.PAYMENT_PROVIDER names the class)."""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

DECLINED_TEST_METHOD = "card_declined"


@dataclass(frozen=True)
class ProviderAnswer:
    approved: bool
    reference: str = ""
    reason: str = ""


class PaymentProvider(Protocol):
    def latency_seconds(self) -> float: ...

    def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, method: str) -> ProviderAnswer: ...

    def refund(self, *, idempotency_key: str, reference: str, amount: Decimal, currency: str) -> ProviderAnswer: ...


class SimulatedPaymentProvider:
    """Approves every charge except the documented test method ``card_declined``.

    Its answer takes SIM_PAYMENT_SECONDS (times SIM_TIME_SCALE): payments handles the charge
    when a timer of that length is due, never by sleeping.
    """

    def latency_seconds(self) -> float:
        low, high = settings.SIM_PAYMENT_SECONDS
        return random.uniform(low, high) * settings.SIM_TIME_SCALE  # noqa: S311 - a simulated delay

    def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, method: str) -> ProviderAnswer:
        if method == DECLINED_TEST_METHOD:
            return ProviderAnswer(approved=False, reason="card declined by the issuer")
        if amount <= 0:
            return ProviderAnswer(approved=False, reason="amount must be positive")
        return ProviderAnswer(approved=True, reference="PAY-" + secrets.token_hex(8).upper())

    def refund(self, *, idempotency_key: str, reference: str, amount: Decimal, currency: str) -> ProviderAnswer:
        return ProviderAnswer(approved=True, reference="RFD-" + secrets.token_hex(8).upper())


@cache
def payment_provider() -> PaymentProvider:
    return import_string(settings.PAYMENT_PROVIDER)()

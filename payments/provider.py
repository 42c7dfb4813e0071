"""The payment provider behind a small interface, so that a real one can be plugged in
(settings.PAYMENT_PROVIDER names the class)."""

from __future__ import annotations

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
    def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, method: str) -> ProviderAnswer: ...

    def refund(self, *, idempotency_key: str, reference: str, amount: Decimal, currency: str) -> ProviderAnswer: ...


class SimulatedPaymentProvider:
    """Approves every charge except the documented test method ``card_declined``.

    Its latency is simulated by the caller scheduling the charge later (SIM_TIME_SCALE), not here.
    """

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

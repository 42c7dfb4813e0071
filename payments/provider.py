"""The payment provider behind a small interface, so that a real one can be plugged in
(settings.PAYMENT_PROVIDER names the class).

Payments calls it with no database lock held and no transaction open (payments/services.py),
every call with an idempotency key: the same key asked again gets the same answer, as with
every serious provider, so a worker that crashed between the call and the record asks again
and charges nothing twice.
"""

from __future__ import annotations

import random
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

DECLINED_TEST_METHOD = "card_declined"


@dataclass(frozen=True)
class ProviderAnswer:
    approved: bool
    reference: str = ""
    reason: str = ""
    voided: bool = False  # a charge whose key was voided before it was made: nothing was taken


class PaymentProvider(Protocol):
    def latency_seconds(self) -> float: ...

    def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, method: str) -> ProviderAnswer: ...

    def refund(self, *, idempotency_key: str, reference: str, amount: Decimal, currency: str) -> ProviderAnswer: ...

    def void(self, *, idempotency_key: str, charge_key: str) -> ProviderAnswer:
        """Cancel the charge asked (or still to be asked) with ``charge_key``: one not made yet
        never will be (asked later, it answers ``voided``); one captured is given back."""
        ...


class SimulatedPaymentProvider:
    """Approves every charge except the documented test method ``card_declined``.

    Keys and answers are kept in a store of its own (``settings.PAYMENT_PROVIDER_STORE``, an
    SQLite file: the provider's side, not the app's database), so the same key gets the same
    answer and reference after a worker's restart too. Every call takes
    ``PAYMENT_PROVIDER_LATENCY`` seconds, as a real provider's HTTP call does; calls may come
    from several threads at once.

    ``latency_seconds`` is the demo's pacing: payments asks for the charge when a timer of
    SIM_PAYMENT_SECONDS (times SIM_TIME_SCALE) is due.
    """

    def latency_seconds(self) -> float:
        low, high = settings.SIM_PAYMENT_SECONDS
        return random.uniform(low, high) * settings.SIM_TIME_SCALE  # noqa: S311 - a simulated delay

    def charge(self, *, idempotency_key: str, amount: Decimal, currency: str, method: str) -> ProviderAnswer:
        if method == DECLINED_TEST_METHOD:
            answer = ProviderAnswer(approved=False, reason="card declined by the issuer")
        elif amount is None or amount <= 0:
            answer = ProviderAnswer(approved=False, reason="amount must be positive")
        else:
            answer = ProviderAnswer(approved=True, reference="PAY-" + secrets.token_hex(8).upper())
        return self._answered(idempotency_key, answer)

    def refund(self, *, idempotency_key: str, reference: str, amount: Decimal, currency: str) -> ProviderAnswer:
        return self._answered(idempotency_key, ProviderAnswer(approved=True,
                                                              reference="RFD-" + secrets.token_hex(8).upper()))

    def void(self, *, idempotency_key: str, charge_key: str) -> ProviderAnswer:
        self._wait()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")  # one caller at a time decides the charge's fate
            try:
                answer = self._stored(db, idempotency_key)
                if answer is None:
                    # a charge not made yet never will be; one made is given back
                    self._store(db, charge_key, ProviderAnswer(approved=False, reason="voided before capture",
                                                               voided=True))
                    answer = self._store(db, idempotency_key, ProviderAnswer(
                        approved=True, reference="VOID-" + secrets.token_hex(8).upper()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return answer

    def _answered(self, key: str, fresh: ProviderAnswer) -> ProviderAnswer:
        """The answer stored for ``key``, or ``fresh``, stored now as its answer."""
        self._wait()
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                answer = self._stored(db, key) or self._store(db, key, fresh)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return answer

    def _wait(self) -> None:
        """The call itself takes PAYMENT_PROVIDER_LATENCY (0 unless asked for), as a real provider's
        HTTP call blocks its caller: that is what the worker must wait out with no lock held and no
        transaction open (issue 26). The demo's pacing is the charge_due timer, scaled by
        SIM_TIME_SCALE, not this."""
        if settings.PAYMENT_PROVIDER_LATENCY:
            time.sleep(settings.PAYMENT_PROVIDER_LATENCY)

    def _connect(self) -> sqlite3.Connection:
        store = Path(settings.PAYMENT_PROVIDER_STORE)
        store.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(store, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")  # workers in several processes read and write at once
        db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, approved INTEGER NOT NULL, "
                   "reference TEXT NOT NULL, reason TEXT NOT NULL, voided INTEGER NOT NULL, "
                   "asked INTEGER NOT NULL DEFAULT 0)")  # asked: how often the key was asked
        return db

    @staticmethod
    def _stored(db: sqlite3.Connection, key: str) -> ProviderAnswer | None:
        db.execute("UPDATE answers SET asked = asked + 1 WHERE key = ?", (key,))
        row = db.execute("SELECT approved, reference, reason, voided FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return ProviderAnswer(approved=bool(row[0]), reference=row[1], reason=row[2], voided=bool(row[3]))

    @staticmethod
    def _store(db: sqlite3.Connection, key: str, answer: ProviderAnswer) -> ProviderAnswer:
        db.execute("INSERT OR IGNORE INTO answers (key, approved, reference, reason, voided, asked) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (key, answer.approved, answer.reference, answer.reason, answer.voided,
                                                 0 if answer.voided else 1))
        return answer


def provider_store_asked(key: str) -> tuple[int, str] | None:
    """How often the simulated provider was asked ``key``, and the reference it answered
    (None: never asked). For operators and tests: the provider's side of the record."""
    store = Path(settings.PAYMENT_PROVIDER_STORE)
    if not store.exists():
        return None
    with closing(sqlite3.connect(store, timeout=30)) as db:
        row = db.execute("SELECT asked, reference FROM answers WHERE key = ?", (key,)).fetchone()
    return None if row is None or not row[0] else (row[0], row[1])


@cache
def payment_provider() -> PaymentProvider:
    return import_string(settings.PAYMENT_PROVIDER)()

"""A client that places orders one after another through the API, each with an Idempotency-Key of
its own, and sends the same request again with the same key after a 503 or a broken connection
(as the 503's body asks), until it is answered 201. Used by the failover fault test
(tests/fault/test_database_failover.py) and its benchmark (bench/ha_bench.py): both measure how
long after a promotion orders are accepted again, the same way.

Needs nothing but ``requests`` and the seed's order (no database, no Django setup)."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from simulation.demo_data import SEED_ORDER

ITEMS = [("PRD002", 1), ("PRD004", 2)]
PAUSE = 0.05  # between one order's answer and the next order
RETRY_PAUSE = 0.2  # after a 503 or no answer; the answer's Retry-After (5 s) is longer, on purpose:
# this client measures the failover, a real one waits as it is told
GIVE_UP_SECONDS = 90  # one order's retries
FULL_SPEED_RUN = 5  # orders in a row whose rate is compared with the rate before the failure
FULL_SPEED_SHARE = 0.8


def order_body(items: list[tuple[str, int]]) -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": sku, "quantity": quantity} for sku, quantity in items]
    return body


@dataclass
class Attempt:
    at: float  # time.monotonic() when the answer came
    key: str
    status: int | None  # None: no answer (connection refused, reset, timed out)
    retry_after: str | None = None
    order_id: str | None = None
    error: str = ""


@dataclass
class OrderClient:
    """Places orders one after another in a thread of its own; retries each with its key until 201."""

    base_url: str
    tokens: list[str]
    attempts: list[Attempt] = field(default_factory=list)
    accepted: list[Attempt] = field(default_factory=list)  # the first 201 of each key
    gave_up: list[str] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.sessions = []
        for token in self.tokens:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            self.sessions.append(session)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop after the order under way (it is retried until answered 201, GIVE_UP_SECONDS at most)."""
        self.stopping.set()
        self.thread.join(timeout=GIVE_UP_SECONDS + 30)
        assert not self.thread.is_alive()

    def _run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            session = self.sessions[n % len(self.sessions)]
            n += 1
            self._place(session, str(uuid.uuid4()))
            time.sleep(PAUSE)

    def _place(self, session: requests.Session, key: str) -> None:
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                response = session.post(f"{self.base_url}/api/orders/", json=order_body(ITEMS),
                                        headers={"Idempotency-Key": key}, timeout=30)
            except requests.RequestException as exc:
                self.attempts.append(Attempt(at=time.monotonic(), key=key, status=None, error=repr(exc)[:200]))
                time.sleep(RETRY_PAUSE)
                continue
            attempt = Attempt(at=time.monotonic(), key=key, status=response.status_code,
                              retry_after=response.headers.get("Retry-After"))
            self.attempts.append(attempt)
            if response.status_code == 201:
                attempt.order_id = response.json()["order_id"]
                self.accepted.append(attempt)
                return
            if response.status_code != 503:
                attempt.error = response.text[:300]
                return
            time.sleep(RETRY_PAUSE)
        self.gave_up.append(key)

    def accepted_after(self, moment: float) -> list[Attempt]:
        return [a for a in list(self.accepted) if a.at > moment]


def full_speed_at(accepted: list[Attempt], *, since: float, rate: float) -> float | None:
    """When the first of FULL_SPEED_RUN orders accepted one after another after ``since`` was
    accepted, the run coming at FULL_SPEED_SHARE of ``rate`` (orders per second) or faster."""
    times = sorted(a.at for a in accepted if a.at > since)
    for i in range(len(times) - FULL_SPEED_RUN + 1):
        span = times[i + FULL_SPEED_RUN - 1] - times[i]
        if (FULL_SPEED_RUN - 1) / max(span, 1e-6) >= FULL_SPEED_SHARE * rate:
            return times[i]
    return None



def rate(accepted: list[Attempt]) -> float:
    """Orders accepted per second from the first to the last of ``accepted``."""
    return (len(accepted) - 1) / max(accepted[-1].at - accepted[0].at, 1e-3) if len(accepted) > 1 else 0.0

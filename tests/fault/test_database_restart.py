"""PostgreSQL goes away and comes back while orders flow -- ``pg_ctl restart -m fast``, then a
kill -9 of the postmaster and a start after it: meanwhile ``/readyz`` answers 503 and the API
refuses orders with a clear 503 (and makes none of them); the web, the relay and the workers
reconnect on their own; nothing is lost or doubled.

The database restarted is a PostgreSQL cluster of the tests' own (``own_postgres``); the whole
system runs on it as deployed: gunicorn, the relay, every queue's worker, qcluster."""

from __future__ import annotations

import time

import pytest
import requests
from django.db import connections

from shop.models import Order
from tests.fault.servers import free_port_run
from tests.fault.tools import (
    CONSUMERS,
    Supervisor,
    answers,
    assert_each_order_delivered_once,
    customer_tokens,
    database_at,
    duplicates_absorbed,
    effects,
    log_count,
    messages_settled,
    order_body,
    processed_matches_outbox,
    stocked,
    wait_for,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS_PER_PHASE = 20  # before the restart, between the restart and the kill, after the kill
ITEMS = [("PRD002", 1), ("PRD004", 2)]
DOWN_SECONDS = 5  # how long the database stays killed before it is started again


class Api:
    def __init__(self, base_url: str, tokens: list[str]) -> None:
        self.base_url = base_url
        self.sessions = []
        for token in tokens:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            self.sessions.append(session)
        self.posted = 0

    def order(self) -> requests.Response:
        session = self.sessions[self.posted % len(self.sessions)]
        self.posted += 1
        return session.post(f"{self.base_url}/api/orders/", json=order_body(ITEMS), timeout=30)

    @property
    def readyz(self) -> str:
        return f"{self.base_url}/readyz"

    def ready(self) -> int:
        return requests.get(self.readyz, timeout=30).status_code


def test_database_restarted_and_killed_while_orders_flow(fault_system, own_postgres):
    with database_at(own_postgres.url):
        # given: the whole system on the tests' own PostgreSQL
        initial = stocked()
        tokens = customer_tokens("db", 2)
        system = fault_system
        port = free_port_run(1, start=18000, stop=19000)
        system.env.update({"DATABASE_URL": own_postgres.url, "WEB_PORT": str(port), "WEB_WORKERS": "1"})
        system.start_all(("web", "relay", "scheduler", *CONSUMERS))
        supervisor = Supervisor(system, ("web", "relay", *CONSUMERS))
        api = Api(f"http://127.0.0.1:{port}", tokens)
        wait_for(lambda: answers(api.readyz), timeout=60, what="the web answering /readyz with 200")
        placed: list[str] = []
        refused: list[requests.Response] = []
        ready_while_down: list[int] = []

        def place(n: int) -> None:
            for _ in range(n):
                response = api.order()
                if response.status_code == 201:
                    placed.append(response.json()["order_id"])
                else:
                    refused.append(response)
                supervisor.tick()

        try:
            place(ORDERS_PER_PHASE)
            # when: a fast restart while the first orders are under way ...
            t0 = time.monotonic()
            own_postgres.restart_fast()
            restart_seconds = time.monotonic() - t0
            place(ORDERS_PER_PHASE)
            # ... then kill -9 of the postmaster: the API refuses orders meanwhile, /readyz says 503
            own_postgres.kill_postmaster()
            # (a backend of the web's kept connection may outlive its postmaster for a moment:
            # the outage is counted from the first probe that sees it)
            wait_for(lambda: api.ready() == 503, timeout=10, what="/readyz seeing the database gone")
            killed_at = time.monotonic()
            refused_before, placed_before = len(refused), len(placed)
            while time.monotonic() - killed_at < DOWN_SECONDS:
                ready_while_down.append(api.ready())
                place(1)
                time.sleep(0.2)
            refused_while_down = refused[refused_before:]
            placed_while_down = len(placed) - placed_before
            own_postgres.start_again()
            back_after = time.monotonic() - killed_at
            connections["default"].close()  # this process's own connection went with the server
            wait_for(lambda: answers(api.readyz), timeout=60, what="/readyz answering 200 again")
            place(ORDERS_PER_PHASE)
            settle_seconds = supervisor.wait(
                lambda: Order.objects.filter(pk__in=placed, status="delivered").count() == len(placed)
                and messages_settled(),
                timeout=180, what="every order delivered and every message handled")
        except AssertionError:
            print(f"statuses={effects(placed).statuses} deaths={dict(supervisor.deaths)}")
            print(system.log_tail(30))
            raise

        # then
        found = effects(placed)
        outbox_rows, processed, exactly_once = processed_matches_outbox()
        ordered = {order_id: ITEMS for order_id in placed}
        print(
            f"\n[database restart] orders placed={len(placed)} refused={len(refused)} (all while killed); "
            f"pg_ctl restart -m fast {restart_seconds:.1f}s; killed -9, started again after {back_after:.1f}s; "
            f"/readyz while down: {sorted(set(ready_while_down))}; all delivered {settle_seconds:.1f}s later\n"
            f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
            f"duplicate deliveries absorbed={duplicates_absorbed(system)} deaths={dict(supervisor.deaths)} "
            f"workers that waited for the database={log_count(system, r'database unavailable')} "
            f"retries={log_count(system, r'attempt [0-9]+ failed')}\n"
            f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}"
        )
        # while the database was away: 503 from /readyz, a clear 503 for every order, none made
        assert ready_while_down
        assert set(ready_while_down) == {503}
        assert placed_while_down == 0
        assert refused == refused_while_down
        assert len(refused) >= 3
        assert {r.status_code for r in refused} == {503}
        assert all(r.headers.get("Retry-After") == "5" and "database is unavailable" in r.json()["detail"]
                   for r in refused)
        assert Order.objects.count() == len(placed) == 3 * ORDERS_PER_PHASE
        # nobody died: the web, the relay and the workers reconnected on their own
        assert supervisor.deaths == {}
        assert_each_order_delivered_once(ordered, initial)

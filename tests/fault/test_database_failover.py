"""The primary PostgreSQL dies while orders flow and its synchronous standby is promoted: kill -9
of the primary's postmaster and every backend, a few seconds with no primary, then ``pg_ctl
promote`` (what Patroni would do). The whole system runs as deployed (gunicorn, the relay, every
queue's worker, qcluster) with one DATABASE_URL naming both servers in libpq's form
(target_session_attrs=read-write): nothing is restarted or reconfigured.

A client places orders one after another, each with an Idempotency-Key of its own, and sends
the same request again with the same key after a 503 or a broken connection, as the 503's
body asks. Every order answered 201 is delivered, each step once; every key made one order;
while no primary answers, an order is a 503 with Retry-After, never a 500."""

from __future__ import annotations

import contextlib
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from django.db import connections

from shop.models import Order
from tests.fault.ordering import ITEMS, OrderClient, full_speed_at, rate
from tests.fault.servers import PostgresPair, database_migrated, free_port_run
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
    processed_matches_outbox,
    stocked,
    wait_for,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

BEFORE = 12  # orders accepted before the primary is killed
AFTER = 15  # orders accepted after the promotion, at least
DOWN_SECONDS = 3  # between the kill and the promotion: no primary at all


@pytest.fixture
def postgres_pair():
    """A primary and a synchronous standby of this test's own, destroyed afterwards (a failover
    leaves them diverged)."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup")):
        pytest.skip("needs PostgreSQL's server binaries")
    pair = PostgresPair.start()
    yield pair
    pair.destroy()


def test_primary_killed_and_standby_promoted_while_orders_flow(postgres_pair, fault_system):
    # (postgres_pair first: it is destroyed after the system has stopped)
    url = database_migrated(postgres_pair.url)
    with database_at(url):
        # given: the whole system on a primary with a synchronous standby, one URL naming both
        initial = stocked()
        tokens = customer_tokens("ha", 2)
        system = fault_system
        port = free_port_run(1, start=18000, stop=19000)
        system.env.update({"DATABASE_URL": url, "WEB_PORT": str(port), "WEB_WORKERS": "2",
                           "API_THROTTLE_ORDERS": "100000/minute", "API_THROTTLE_USER": "100000/minute"})
        system.start_all(("web", "relay", "scheduler", *CONSUMERS))
        supervisor = Supervisor(system, ("web", "relay", "scheduler", *CONSUMERS))
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{base_url}/readyz"), timeout=90, what="the web answering /readyz with 200")
        client = OrderClient(base_url, tokens)
        client.start()
        try:
            wait_for(lambda: len(client.accepted) >= BEFORE, timeout=90, what=f"{BEFORE} orders accepted")
            # when: the primary dies with orders under way; for a while no server is writable ...
            rate_before = rate(client.accepted)
            postgres_pair.kill("primary")
            time.sleep(DOWN_SECONDS)
            # ... then the standby is promoted; nobody tells the system
            postgres_pair.promote()
            promoted_at = time.monotonic()
            wait_for(lambda: len(client.accepted_after(promoted_at)) >= AFTER, timeout=120,
                     what=f"{AFTER} orders accepted after the promotion")
            with contextlib.suppress(AssertionError):  # measured, not asserted (a loaded machine may lag)
                wait_for(lambda: full_speed_at(client.accepted, since=promoted_at, rate=rate_before) is not None,
                         timeout=30, what="orders accepted as fast as before the kill")
            client.stop()
            connections["default"].close()  # this process's own connection went with the primary
            placed = [a.order_id for a in client.accepted]
            settle_seconds = supervisor.wait(
                lambda: Order.objects.filter(pk__in=placed, status="delivered").count() == len(placed)
                and messages_settled(),
                timeout=180, what="every order delivered and every message handled")
            settled_at = time.monotonic()
        except AssertionError:
            client.stopping.set()
            print(f"attempts={Counter(a.status for a in client.attempts)} deaths={dict(supervisor.deaths)}")
            print(postgres_pair.status())
            print(system.log_tail(30))
            raise

        # then
        first_accepted = min(a.at for a in client.accepted_after(promoted_at)) - promoted_at
        full_speed_moment = full_speed_at(client.accepted, since=promoted_at, rate=rate_before)
        full_speed = "not within 30s" if full_speed_moment is None else f"after {full_speed_moment - promoted_at:.2f}s"
        statuses = Counter(a.status for a in client.attempts)
        keys = defaultdict(set)
        for attempt in client.attempts:
            if attempt.order_id:
                keys[attempt.key].add(attempt.order_id)
        refused = [a for a in client.attempts if a.status == 503]
        retried = {a.key for a in refused} & set(keys)
        found = effects(placed)
        outbox_rows, processed, exactly_once = processed_matches_outbox()
        ordered = {order_id: ITEMS for order_id in placed}
        print(
            f"\n[database failover] orders accepted={len(placed)} (before the kill {BEFORE}+, "
            f"{rate_before:.1f}/s); answers {dict(statuses)}, {len(retried)} keys answered 503 then 201; "
            f"no primary for {DOWN_SECONDS}s, then promoted: "
            f"first order accepted {first_accepted:.2f}s after the promotion, full speed {full_speed}; "
            f"all delivered {settled_at - promoted_at:.1f}s after the promotion ({settle_seconds:.1f}s after the "
            f"client stopped)\n"
            f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
            f"duplicate deliveries absorbed={duplicates_absorbed(system)} deaths={dict(supervisor.deaths)} "
            f"workers that waited for the database={log_count(system, r'database unavailable')}\n"
            f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}"
        )
        # while no primary answered: 503 with Retry-After (or no answer), never a 500 or another error
        assert set(statuses) <= {201, 503, None}, [a for a in client.attempts if a.status not in (201, 503, None)]
        assert refused
        assert all(a.retry_after == "5" for a in refused)
        assert client.gave_up == []
        # one order per key, however often it was sent: the same order each time it was answered
        assert retried  # keys answered 503 first, then 201 with the same key
        assert all(len(ids) == 1 for ids in keys.values())
        assert len(keys) == len(placed) == len(set(placed))
        assert Order.objects.count() == len(placed)
        # nobody died or was restarted: the web, the relay, the workers and qcluster found the new primary
        assert supervisor.deaths == {}
        assert system.restarts == 0
        assert_each_order_delivered_once(ordered, initial)

"""Two worker processes on the same queues under load: every lock a batch takes is taken in one
global order (table, then primary key), so PostgreSQL detects no deadlock and every order is
delivered once."""

import random
import time

import pytest
from django.core.management import call_command
from django.db import connection

from messaging.models import DeadLetter
from tests.fault.tools import (
    Supervisor,
    effects,
    log_count,
    messages_settled,
    place_order,
    processed_matches_outbox,
    queue_depths,
    statuses,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS = 100
PRODUCTS = ("PRD001", "PRD002", "PRD003", "PRD004")


def deadlocks_detected() -> int:
    """Deadlocks PostgreSQL has detected in this database since its statistics were reset."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh reading, not this transaction's
        cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_two_workers_on_the_same_queues_deadlock_never_and_deliver_every_order_once(
        fault_system, make_customer, settings):
    # given: two workers consuming every product queue (the Procfile's worker line, small
    # prefetch so both hold work), the simulated actors, and 100 orders of two or three products
    # each waiting in the outbox, so that batches of both workers share stock rows, orders,
    # tracking records and contacts
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "orders": "100000/minute",
                                   "user": "100000/minute"}
    call_command("load_demo_data", stock=100_000, verbosity=0)
    system = fault_system
    system.start("worker", count=2, args=["--prefetch", "10"])
    system.start("sim_actors")
    supervisor = Supervisor(system, ("relay", "worker", "sim_actors"))
    supervisor.wait(lambda: queue_depths(["new_orders"])["new_orders"][1] == 2, timeout=60,
                    what="both workers listening")
    _, client = make_customer()
    rng = random.Random(26)
    order_ids = [place_order(client, [(sku, rng.randint(1, 3)) for sku in rng.sample(PRODUCTS, rng.randint(2, 3))])
                 for _ in range(ORDERS)]
    deadlocks_before = deadlocks_detected()

    # when: the relay sends them all at once
    system.start("relay")
    started = time.monotonic()
    try:
        deadline = started + 240
        while not (statuses(order_ids) == {"delivered": ORDERS} and messages_settled()):
            assert time.monotonic() < deadline, f"timed out: {statuses(order_ids)}"
            supervisor.tick()
            time.sleep(0.2)
    except AssertionError:
        print(system.log_tail(30))
        raise
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # PostgreSQL flushes a backend's statistics at most once a second
    deadlocks = deadlocks_detected() - deadlocks_before

    # then
    found = effects(order_ids)
    handled = [log_count(system, r"outcome=handled", names=(f"worker-{i}",)) for i in range(2)]
    logged_deadlocks = log_count(system, r"deadlock detected", names=("worker-0", "worker-1", "sim_actors-0"))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    print(f"\n[two workers] {ORDERS} orders in {elapsed:.1f}s; deliveries handled per worker {handled}; "
          f"deadlocks detected by PostgreSQL {deadlocks}, in the logs {logged_deadlocks}; "
          f"deliveries {outbox_rows}, processed {processed}, exactly once {exactly_once}")
    assert supervisor.deaths == {}
    assert min(handled) > 0, "both workers handled deliveries"
    assert deadlocks == 0
    assert logged_deadlocks == 0
    assert found.statuses == {"delivered": ORDERS}
    assert found.missing == []
    assert found.doubled == []
    assert processed == outbox_rows == exactly_once
    assert DeadLetter.objects.count() == 0

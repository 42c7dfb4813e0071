"""kill -9 of queue workers and the relay while orders flow: nothing lost, nothing doubled."""

import random
import time

import pytest
from django.core.management import call_command

from messaging.models import DeadLetter
from tests.fault.tools import (
    CONSUMERS,
    Supervisor,
    duplicates_absorbed,
    effects,
    expected_stock,
    messages_settled,
    place_order,
    processed_matches_outbox,
    queue_depths,
    random_items,
    stock,
    vehicles_all_available,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS = 20
TIMER_KILLS = 15
# Per delivery: die before handling (nothing committed) or after the commit, before the ack.
CONSUMER_FAULTS = {"FAULT_INJECTION": "consumer.before_handle=0.03,consumer.after_commit=0.07"}


def test_kill_9_workers_at_random_points_loses_and_doubles_nothing(fault_system, make_customer):
    # given: plenty of stock, every worker running; the queue workers crash themselves now and
    # then before handling or between commit and ack
    call_command("load_demo_data", stock=1000, verbosity=0)
    initial = stock()
    system = fault_system
    system.start("relay")
    system.start("scheduler")
    for name in CONSUMERS:
        system.start(name, env=CONSUMER_FAULTS)
    supervisor = Supervisor(system, ("relay", *CONSUMERS))
    _, client = make_customer()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ordered: dict[str, list[tuple[str, int]]] = {}

    # when: orders arrive while a timer kill -9s a random worker (or the relay) every ~1 s and
    # the supervisor restarts whatever died
    started = time.monotonic()
    next_order = started
    next_kill = started + rng.uniform(0.5, 1.5)
    timer_kills = 0
    try:
        while (len(ordered) < ORDERS or timer_kills < TIMER_KILLS) and time.monotonic() - started < 120:
            now = time.monotonic()
            if len(ordered) < ORDERS and now >= next_order:
                items = random_items(rng)
                ordered[place_order(client, items)] = items
                next_order = now + 0.4
            if timer_kills < TIMER_KILLS and now >= next_kill:
                if supervisor.kill(rng.choice(("relay", *CONSUMERS)), rng):
                    timer_kills += 1
                next_kill = now + rng.uniform(0.6, 1.4)
            supervisor.tick()
            time.sleep(0.05)
        chaos_seconds = time.monotonic() - started
        assert (len(ordered), timer_kills) == (ORDERS, TIMER_KILLS)
        in_flight = sum(1 for s in effects(list(ordered)).statuses.elements() if s != "delivered")
        # then injection off: every queue worker replaced by one without FAULT_INJECTION
        for name in CONSUMERS:
            system.respawn(name, env={})
        settle_seconds = supervisor.wait(
            lambda: effects(list(ordered)).statuses.get("delivered", 0) == ORDERS and messages_settled(),
            timeout=150, what="every order delivered and every message handled")
    except AssertionError:
        print(f"seed={seed} deaths={dict(supervisor.deaths)} statuses={effects(list(ordered)).statuses}")
        print(system.log_tail(30))
        raise

    # then
    found = effects(list(ordered))
    injected = supervisor.count("self-kill")
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    duplicates = duplicates_absorbed(system)
    print(
        f"\n[worker kills] seed={seed} orders={ORDERS} chaos={chaos_seconds:.1f}s (orders still in flight "
        f"when it ended: {in_flight}) settle={settle_seconds:.1f}s\n"
        f"  kills survived: {timer_kills + injected} = {timer_kills} by timer + {injected} self-inflicted "
        f"(FAULT_INJECTION) ; restarts={system.restarts} ; deaths by worker={dict(supervisor.deaths)}\n"
        f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
        f"duplicate deliveries absorbed={duplicates} waited for a vehicle={found.waited_for_vehicle}\n"
        f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}"
    )
    assert supervisor.unexpected() == {}, "a worker died some other way than kill -9"
    assert timer_kills + injected >= TIMER_KILLS
    assert found.lost == 0
    assert found.statuses == {"delivered": ORDERS}
    assert found.missing == []
    assert found.doubled == []
    assert stock() == expected_stock(initial, ordered, ordered)
    assert vehicles_all_available()
    assert DeadLetter.objects.count() == 0
    assert processed == outbox_rows == exactly_once
    assert all(depth == (0, 1) for depth in queue_depths().values()), queue_depths()

"""kill -9 of queue workers and the relay while orders flow: nothing lost, nothing doubled."""

import random
import time

import pytest

from messaging.models import ProcessedMessage
from shop.models import Order
from tests.fault.tools import (
    CONSUMERS,
    Supervisor,
    assert_each_order_delivered_once,
    duplicates_absorbed,
    effects,
    messages_settled,
    place_order,
    processed_matches_outbox,
    queue_depths,
    random_items,
    timer_lateness_seconds,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS = 20
TIMER_KILLS = 15  # at least; the timer goes on (at most MAX_TIMER_KILLS) until CHAOS_UNTIL_DELIVERED
MAX_TIMER_KILLS = 30
CHAOS_UNTIL_DELIVERED = 10  # orders delivered before the faults stop: most of the flow runs under them
# Per delivery: die before handling (nothing committed) or after the commit, before the ack.
CONSUMER_FAULTS = {"FAULT_INJECTION": "consumer.before_handle=0.04,consumer.after_commit=0.08"}
VICTIMS = ("relay", *CONSUMERS, "scheduler")
# Timed steps short but real (picking 0.1 s, stages 0.05-0.15 s, the payment provider 25-75 ms):
# each is a timer, sent by the relay when due and handled by a queue worker.
TIME_SCALE = "0.05"
# A timed step killed anywhere comes back as soon as a process is restarted and its backlog is
# worked off: seconds, not a minute (3.7 s at most before the rework, 15.4 s seen after it).
MAX_TIMER_LATENESS_SECONDS = 30
CHAOS_MAX_SECONDS = 150


def test_kill_9_workers_at_random_points_loses_and_doubles_nothing(fault_system, initial_stock, make_customer):
    # given: plenty of stock, every worker running; the queue workers crash themselves now and
    # then before handling or between commit and ack
    system = fault_system
    system.env["SIM_TIME_SCALE"] = TIME_SCALE
    system.start("relay")
    system.start("scheduler")
    for name in CONSUMERS:
        system.start(name, env=CONSUMER_FAULTS)
    supervisor = Supervisor(system, VICTIMS)
    _, client = make_customer()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ordered: dict[str, list[tuple[str, int]]] = {}

    # when: orders arrive while a timer kill -9s a random worker or the relay every ~1 s (each
    # of them once first) and the supervisor restarts whatever died
    started = time.monotonic()
    next_order = started
    next_kill = started + rng.uniform(0.5, 1.5)
    victims = rng.sample(VICTIMS, len(VICTIMS))
    timer_kills = 0

    def delivered() -> int:
        return Order.objects.filter(pk__in=list(ordered), status="delivered").count()

    def chaos_goes_on() -> bool:
        if len(ordered) < ORDERS or timer_kills < TIMER_KILLS:
            return True
        if supervisor.count("self-kill") == 0:
            return True  # no worker has crashed itself (FAULT_INJECTION) yet: give them time to
        return timer_kills < MAX_TIMER_KILLS and delivered() < CHAOS_UNTIL_DELIVERED

    def timer_kills_go_on() -> bool:
        # after the first TIMER_KILLS, only once a worker crashed itself: on a loaded machine a
        # restarted worker may need many seconds to consume, and kills every second would keep
        # every worker from ever handling (and so from crashing itself)
        return timer_kills < TIMER_KILLS or supervisor.count("self-kill") > 0

    try:
        while chaos_goes_on() and time.monotonic() - started < CHAOS_MAX_SECONDS:
            now = time.monotonic()
            if len(ordered) < ORDERS and now >= next_order:
                items = random_items(rng)
                ordered[place_order(client, items)] = items
                next_order = now + 0.4
            if now >= next_kill and timer_kills_go_on():
                victim = victims[timer_kills] if timer_kills < len(victims) else rng.choice(VICTIMS)
                if supervisor.kill(victim, rng):
                    timer_kills += 1
                next_kill = now + rng.uniform(0.7, 1.5)
            supervisor.tick()
            time.sleep(0.1)
        chaos_seconds = time.monotonic() - started
        assert len(ordered) == ORDERS
        assert timer_kills >= TIMER_KILLS
        in_flight = ORDERS - delivered()
        handled_under_faults = ProcessedMessage.objects.count()
        # then injection off: every queue worker replaced by one without FAULT_INJECTION
        for name in CONSUMERS:
            system.respawn(name, env={})
        # (the fresh workers must be consuming too: when the chaos phase already handled every
        # message, nothing else would wait for them to connect before the queues are checked)
        settle_seconds = supervisor.wait(
            lambda: delivered() == ORDERS and messages_settled()
            and all(depth is not None and depth[1] == 1 for depth in queue_depths().values()),
            timeout=150, what="every order delivered, every message handled and every worker consuming")
    except AssertionError:
        print(f"seed={seed} deaths={dict(supervisor.deaths)} statuses={effects(list(ordered)).statuses}")
        print(system.log_tail(30))
        raise

    # then
    found = effects(list(ordered))
    injected = supervisor.count("self-kill")
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    duplicates = duplicates_absorbed(system)
    lateness = sorted(timer_lateness_seconds())
    print(
        f"\n[worker kills] seed={seed} orders={ORDERS} chaos={chaos_seconds:.1f}s (messages handled meanwhile: "
        f"{handled_under_faults} of {outbox_rows}; orders not yet delivered when it ended: {in_flight}) "
        f"settle={settle_seconds:.1f}s\n"
        f"  kills survived: {timer_kills + injected} = {timer_kills} by timer + {injected} self-inflicted "
        f"(FAULT_INJECTION) ; restarts={system.restarts} ; deaths by worker={dict(supervisor.deaths)}\n"
        f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
        f"duplicate deliveries absorbed={duplicates} waited for a vehicle={found.waited_for_vehicle}\n"
        f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}\n"
        f"  timers={len(lateness)} handled after due by: median {lateness[len(lateness) // 2]:.3f}s, "
        f"max {lateness[-1]:.3f}s"
    )
    assert supervisor.unexpected() == {}, "a worker died some other way than kill -9"
    assert timer_kills >= TIMER_KILLS
    assert injected >= 1
    assert len(ordered) == ORDERS
    assert_each_order_delivered_once(ordered, initial_stock)
    # every timed step (payment answer, picking, each stage: 6 per order) once, seconds late at most
    assert len(lateness) == 6 * ORDERS
    assert lateness[0] >= 0, lateness[:5]
    assert lateness[-1] < MAX_TIMER_LATENESS_SECONDS, lateness[-5:]

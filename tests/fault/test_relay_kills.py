"""kill -9 of the relay between the broker's confirm and marking the rows published."""

import random
import time
import uuid

import pika
import pytest
from django.core.management import call_command
from django.db import transaction

from contracts.messages import OrderPlaced
from messaging.models import DeadLetter, OutboxMessage
from messaging.outbox import outbox_emit
from messaging.relay import OutboxRelay
from shop.models import Order
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
from tests.messaging.examples import order_placed_payload

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS = 20  # placed at first; more (at most MAX_ORDERS) only if the flow ends before enough deaths
MAX_ORDERS = 40
RELAY_DEATHS = 10
RELAY_FAULTS = {"FAULT_INJECTION": "relay.after_publish=0.5"}


def test_relay_killed_after_confirm_before_marking_loses_nothing_and_duplicates_are_absorbed(
        fault_system, make_customer):
    # given: every worker; the relay dies (SIGKILL on itself) after half of its confirmed batches
    call_command("load_demo_data", stock=1000, verbosity=0)
    initial = stock()
    system = fault_system
    system.start("relay", env=RELAY_FAULTS)
    system.start("scheduler")
    for name in CONSUMERS:
        system.start(name)
    supervisor = Supervisor(system, ("relay", *CONSUMERS))
    _, client = make_customer()
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    ordered: dict[str, list[tuple[str, int]]] = {}

    def delivered() -> int:
        return Order.objects.filter(pk__in=list(ordered), status="delivered").count()

    # when: orders keep coming until the relay has died RELAY_DEATHS times (the supervisor
    # restarts it each time)
    started = time.monotonic()
    next_order = started
    try:
        while time.monotonic() - started < 90:
            deaths = supervisor.count("self-kill", "relay")
            if len(ordered) >= ORDERS and deaths >= RELAY_DEATHS:
                break
            now = time.monotonic()
            idle = len(ordered) >= ORDERS and delivered() == len(ordered)
            if now >= next_order and (len(ordered) < ORDERS or (idle and len(ordered) < MAX_ORDERS)):
                items = random_items(rng)
                ordered[place_order(client, items)] = items
                next_order = now + 0.4
            supervisor.tick()
            time.sleep(0.1)
        chaos_seconds = time.monotonic() - started
        relay_deaths = supervisor.count("self-kill", "relay")
        assert relay_deaths >= RELAY_DEATHS, f"only {relay_deaths} relay deaths in {chaos_seconds:.0f}s"
        # then: a relay without injection
        system.respawn("relay", env={})
        settle_seconds = supervisor.wait(lambda: delivered() == len(ordered) and messages_settled(),
                                         timeout=120, what="every order delivered and every message handled")
    except AssertionError:
        print(f"seed={seed} deaths={dict(supervisor.deaths)} orders={len(ordered)} delivered={delivered()}")
        print(system.log_tail(30))
        raise

    # then
    found = effects(list(ordered))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    duplicates = duplicates_absorbed(system)
    print(
        f"\n[relay kills] seed={seed} orders={len(ordered)} chaos={chaos_seconds:.1f}s settle={settle_seconds:.1f}s\n"
        f"  relay deaths after confirm, before marking (survived)={relay_deaths} restarts={system.restarts}\n"
        f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once} "
        f"duplicate deliveries absorbed by consumers={duplicates}\n"
        f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)}"
    )
    assert supervisor.unexpected() == {}
    assert found.lost == 0
    assert found.statuses == {"delivered": len(ordered)}
    assert found.missing == []
    assert found.doubled == []
    # each death re-sends at least the row it had confirmed: each copy reached a consumer
    # and was recognised as already handled
    assert duplicates >= relay_deaths
    assert processed == outbox_rows == exactly_once
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    assert stock() == expected_stock(initial, ordered, ordered)
    assert vehicles_all_available()
    assert DeadLetter.objects.count() == 0
    assert all(depth == (0, 1) for depth in queue_depths().values()), queue_depths()


class _BreaksMidBatch:
    """The relay's publisher, whose connection is lost after ``after`` messages of a batch were confirmed."""

    def __init__(self, publisher, after: int) -> None:
        self._publisher, self._after = publisher, after

    def publish_batch(self, messages):
        result = self._publisher.publish_batch(list(messages)[: self._after])
        result.error = pika.exceptions.StreamLostError("Stream connection lost (simulated)")
        return result

    def __getattr__(self, name):
        return getattr(self._publisher, name)


def test_rows_confirmed_before_the_connection_broke_stay_marked_published(transactional_db, broker):
    # given: five outbox rows, and a connection that breaks after the broker confirmed two
    with transaction.atomic():
        for _ in range(5):
            order_id = str(uuid.uuid4())
            outbox_emit(OrderPlaced.model_validate(order_placed_payload(order_id)), queue="new_orders",
                        correlation_id=order_id, producer="shop")
    relay = OutboxRelay(install_signal_handlers=False)
    relay._publisher = _BreaksMidBatch(relay._ensure_publisher(), after=2)

    # when
    with pytest.raises(pika.exceptions.StreamLostError):
        relay.drain_batch()
    relay._close_publisher()
    on_broker = queue_depths(["new_orders"])["new_orders"][0]
    marked = OutboxMessage.objects.filter(published_at__isnull=False).count()
    OutboxRelay(install_signal_handlers=False).run(once=True)  # a relay sends what is left
    copies = queue_depths(["new_orders"])["new_orders"][0]

    # then
    print(f"\n[relay, connection lost mid-batch] confirmed by the broker={on_broker} marked published={marked} "
          f"copies on the queue after the next batch={copies} for 5 rows")
    assert on_broker == 2
    assert marked == 2
    assert copies == 5

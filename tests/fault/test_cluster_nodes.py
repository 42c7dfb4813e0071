"""A three-node RabbitMQ cluster (the tests' own) loses the node that leads the quorum queues
while 200 orders flow -- killed with -9, or paused with SIGSTOP for 20 s: every order is
delivered, each step once. RABBITMQ_URL names the three nodes; the relay and the workers fail
over to the next one; what the relay had not seen confirmed goes out again."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest

from shop.models import Order
from tests.fault.tools import (
    CONSUMERS,
    Supervisor,
    assert_each_order_delivered_once,
    duplicates_absorbed,
    effects,
    log_count,
    messages_settled,
    place_order,
    processed_matches_outbox,
    random_items,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

ORDERS = 200
FAULT_AT = 50  # orders placed before the node goes: most of the flow runs after it
PAUSE_SECONDS = 20
CUSTOMERS = 4  # a customer may place 120 orders a minute (API_THROTTLE_ORDERS)


@pytest.fixture
def fault_rabbitmq(on_rabbitmq_cluster) -> str:
    """The tests' own three nodes, all named in RABBITMQ_URL."""
    return on_rabbitmq_cluster


def leading_node(cluster, *, via: int = 1) -> int:
    """The node that leads most of the quorum queues."""
    (node, _), = cluster.leaders(via=via).most_common(1)
    assert node != 0, cluster.leaders(via=via)
    return node


def orders_through_a_fault(system, clients, *, fault: Callable[[], None], end_fault: Callable[[], None],
                           fault_seconds: float, seed: int) -> tuple[dict, dict]:
    """Place ORDERS orders, the fault starting after FAULT_AT of them and ending ``fault_seconds``
    later (or when the orders are placed, if later); wait until every order is delivered."""
    rng = random.Random(seed)
    supervisor = Supervisor(system, ("relay", *CONSUMERS))
    ordered: dict[str, list[tuple[str, int]]] = {}
    figures: dict[str, Any] = {}
    fault_on = False
    try:
        while len(ordered) < ORDERS:
            if len(ordered) == FAULT_AT and "fault_at" not in figures:
                figures["fault_at"] = time.monotonic()
                fault()
                fault_on = True
            items = random_items(rng)
            ordered[place_order(clients[len(ordered) % len(clients)], items)] = items
            if fault_on and time.monotonic() - figures["fault_at"] >= fault_seconds:
                end_fault()
                fault_on = False
            supervisor.tick()
            time.sleep(0.03)
        figures["placing_seconds"] = time.monotonic() - figures["fault_at"]
        if fault_on:
            time.sleep(max(0.0, fault_seconds - (time.monotonic() - figures["fault_at"])))
            end_fault()
            fault_on = False
        figures["fault_ended"] = time.monotonic()
        figures["settle_seconds"] = supervisor.wait(
            lambda: Order.objects.filter(pk__in=list(ordered), status="delivered").count() == ORDERS
            and messages_settled(),
            timeout=300, what="every order delivered and every message handled")
    except AssertionError:
        print(f"seed={seed} statuses={effects(list(ordered)).statuses} deaths={dict(supervisor.deaths)}")
        print(system.log_tail(30))
        raise
    finally:
        if fault_on:
            end_fault()
    figures["deaths"] = dict(supervisor.deaths)
    return ordered, figures


def assert_each_step_once(system, ordered: dict, initial: dict, figures: dict, what: str) -> None:
    found = effects(list(ordered))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    reconnects = log_count(system, r"broker connection lost|broker unavailable")
    print(
        f"\n[{what}] orders={len(ordered)}, the fault after {FAULT_AT}; placing took "
        f"{figures['placing_seconds']:.1f}s from the fault; all delivered {figures['settle_seconds']:.1f}s after "
        f"the fault ended\n"
        f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
        f"duplicate deliveries absorbed={duplicates_absorbed(system)} reconnects logged={reconnects} "
        f"worker deaths={figures['deaths']}\n"
        f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}"
    )
    assert figures["deaths"] == {}, "a worker died"
    assert len(ordered) == ORDERS
    # (a queue may have no consumer yet: the killed node's consumers are reconnecting)
    assert_each_order_delivered_once(ordered, initial, one_consumer_each=False)


def test_kill_9_of_the_leading_node_while_orders_flow(fault_system, initial_stock, make_customer, rabbitmq_cluster):
    # given: the whole system on the three-node cluster, every queue led by one node
    fault_system.start_all(("relay", "scheduler", *CONSUMERS))
    clients = [make_customer()[1] for _ in range(CUSTOMERS)]
    victim = leading_node(rabbitmq_cluster)
    seed = random.randrange(1 << 30)

    # when: that node is killed with -9 after 50 of the 200 orders; it stays down until all are delivered
    try:
        ordered, figures = orders_through_a_fault(
            fault_system, clients, fault=lambda: rabbitmq_cluster.kill(victim), end_fault=lambda: None,
            fault_seconds=0, seed=seed)
        survivors = [i for i in range(1, rabbitmq_cluster.nodes + 1) if i != victim]
        leaders_after = rabbitmq_cluster.leaders(via=survivors[0])
        # then: every order delivered, each step once, while the node was still down
        assert_each_step_once(fault_system, ordered, initial_stock, figures, f"kill -9 of node {victim}")
        assert leaders_after[victim] == 0, leaders_after
        assert sum(leaders_after.values()) > 0, leaders_after
    finally:
        rabbitmq_cluster.start_node(victim)  # the next test finds three nodes again
    assert rabbitmq_cluster.running() == [1, 2, 3]


def test_the_leading_node_paused_20_s_while_orders_flow(fault_system, initial_stock, make_customer, rabbitmq_cluster):
    # given
    fault_system.start_all(("relay", "scheduler", *CONSUMERS))
    clients = [make_customer()[1] for _ in range(CUSTOMERS)]
    victim = leading_node(rabbitmq_cluster)
    paused: list[int] = []

    # when: SIGSTOP to that node after 50 of the 200 orders, SIGCONT 20 s later
    ordered, figures = orders_through_a_fault(
        fault_system, clients, fault=lambda: paused.append(rabbitmq_cluster.pause(victim)),
        end_fault=lambda: [rabbitmq_cluster.resume(pid) for pid in paused],
        fault_seconds=PAUSE_SECONDS, seed=random.randrange(1 << 30))

    # then
    assert figures["fault_ended"] - figures["fault_at"] >= PAUSE_SECONDS
    assert_each_step_once(fault_system, ordered, initial_stock, figures, f"node {victim} paused {PAUSE_SECONDS}s")
    assert rabbitmq_cluster.running() == [1, 2, 3]

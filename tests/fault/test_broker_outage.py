"""RabbitMQ stopped while orders flow and started again: the API keeps taking orders, nothing
is lost or doubled. The node stopped is one the tests started (``rabbitmq_node``), never the
broker the suite found running."""

import logging
import time

import pytest
from pika.exceptions import AMQPConnectionError

from messaging import broker as broker_mod
from messaging.models import OutboxMessage
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
)

pytestmark = [
    pytest.mark.fault,
    pytest.mark.e2e,
]

BEFORE = 10  # orders placed while the broker runs
DURING = 10  # orders placed while it is stopped
ITEMS = [("PRD001", 1), ("PRD003", 2)]


def reachable() -> bool:
    pika_logger = logging.getLogger("pika")
    level = pika_logger.level
    pika_logger.setLevel(logging.CRITICAL)  # a refused connection is what we expect here
    try:
        broker_mod.connect().close()
    except AMQPConnectionError:
        return False
    else:
        return True
    finally:
        pika_logger.setLevel(level)


@pytest.fixture
def fault_rabbitmq(on_rabbitmq_node) -> str:
    """The tests' own node, not the fault vhost of the broker the suite found running."""
    return on_rabbitmq_node


def broker_start(node) -> float:
    started = time.monotonic()
    node.ctl(1, "start_app")
    deadline = time.monotonic() + 90
    while not reachable():
        assert time.monotonic() < deadline, "RabbitMQ did not come back within 90 s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_broker_stopped_and_started_mid_run_loses_and_doubles_nothing(fault_system, initial_stock, make_customer,
                                                                       rabbitmq_node):
    # given: every worker running, orders flowing
    system = fault_system
    system.start_all(("relay", "scheduler", *CONSUMERS))
    supervisor = Supervisor(system, ("relay", *CONSUMERS))
    _, client = make_customer()
    ordered: dict[str, list[tuple[str, int]]] = {}
    stopped = False
    try:
        for _ in range(BEFORE):
            ordered[place_order(client, ITEMS)] = ITEMS
            time.sleep(0.1)
        supervisor.wait(lambda: OutboxMessage.objects.filter(type__in=["order.confirmed", "order.rejected"]).exists(),
                        timeout=60, what="the first orders under way")
        delivered_before = Order.objects.filter(status="delivered").count()

        # when: the broker stops ...
        t0 = time.monotonic()
        stopped = True
        rabbitmq_node.ctl(1, "stop_app")
        stop_seconds = time.monotonic() - t0
        assert not reachable()
        # ... the API still takes orders: they wait in the outbox
        posted = time.monotonic()
        during = []
        for _ in range(DURING):
            order_id = place_order(client, ITEMS)  # asserts 201
            ordered[order_id] = ITEMS
            during.append(order_id)
        post_seconds = time.monotonic() - posted
        time.sleep(3)  # the relay and the workers back off and retry meanwhile
        waiting = OutboxMessage.objects.filter(published_at__isnull=True).count()
        unpublished_new = OutboxMessage.objects.filter(
            correlation_id__in=during, type="order.placed", published_at__isnull=True).count()
        down_seconds = time.monotonic() - t0
        # ... and starts again
        start_seconds = broker_start(rabbitmq_node)
        stopped = False
        recovered = time.monotonic()
        settle_seconds = supervisor.wait(
            lambda: Order.objects.filter(pk__in=list(ordered), status="delivered").count() == len(ordered)
            and messages_settled(),
            timeout=120, what="every order delivered and every message handled")
        recovery_seconds = time.monotonic() - recovered
    except AssertionError:
        print(f"statuses={effects(list(ordered)).statuses}")
        print(system.log_tail(30))
        raise
    finally:
        if stopped or not reachable():
            broker_start(rabbitmq_node)

    # then
    found = effects(list(ordered))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    print(
        f"\n[broker outage] orders={len(ordered)} ({BEFORE} before, {DURING} while stopped; "
        f"{delivered_before} delivered when it stopped)\n"
        f"  stop_app {stop_seconds:.1f}s, down {down_seconds:.1f}s, start_app+running {start_seconds:.1f}s, "
        f"{DURING} POSTs while down in {post_seconds:.2f}s (all 201), "
        f"outbox rows waiting while down={waiting}, all delivered {recovery_seconds:.1f}s after the broker was back\n"
        f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
        f"duplicate deliveries absorbed={duplicates_absorbed(system)} worker deaths={dict(supervisor.deaths)}\n"
        f"  outbox rows={outbox_rows} processed records={processed} handled exactly once={exactly_once}"
    )
    assert unpublished_new == DURING
    assert supervisor.deaths == {}, "a worker died during the outage"
    assert_each_order_delivered_once(ordered, initial_stock)
    assert settle_seconds < 120

"""SIGTERM stops a queue worker cleanly: the message in hand is finished, the prefetched ones
go back to the queue, the exit code is 0."""

import os
import re
import signal
import subprocess
import time
import uuid

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from messaging.models import ProcessedMessage
from tests.fault.tools import json_body, log_count, publish_raw, queue_depths, wait_for
from tests.messaging.examples import order_placed_payload
from warehouse.models import Reservation, StockItem

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

CONSUMER = "warehouse.new_orders"


def order_placed(order_id: str) -> dict:
    return order_placed_payload(order_id)


def publish_orders(channel, count: int) -> list[str]:
    channel.confirm_delivery()
    ids = []
    for _ in range(count):
        order_id = str(uuid.uuid4())
        publish_raw(channel, "new_orders", json_body(order_placed(order_id)), message_id=str(uuid.uuid4()),
                    msg_type="order.placed", correlation_id=order_id)
        ids.append(order_id)
    return ids


def ready(queue: str = "new_orders") -> int:
    return queue_depths([queue])[queue][0]


def consumers(queue: str = "new_orders") -> int:
    return queue_depths([queue])[queue][1]


def someone_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def stopped_line(system) -> str:
    for path in system.log_dir.glob("new_orders-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("worker new_orders stopped"):
                return line
    return ""


def test_sigterm_finishes_the_messages_in_hand_and_hands_back_the_prefetched_ones(fault_system, broker):
    # given: 30 orders waiting; a worker with prefetch 10 stuck in the first one (we hold the
    # stock row it needs). It holds up to 4 in hand (handled together, in one transaction);
    # the others wait unacked in its prefetch buffer.
    call_command("load_demo_data", stock=1000, verbosity=0)
    system = fault_system
    publish_orders(broker, 30)
    assert ready() == 30
    with transaction.atomic():
        StockItem.objects.select_for_update().get(sku="PRD001")
        (worker,) = system.start("new_orders", args=["--prefetch", "10"], env={"CONSUMER_TRANSACTION_BATCH": "4"})
        wait_for(lambda: ready() == 20 and someone_waits_for_a_lock(), timeout=30,
                 what="the worker holding 10 messages, blocked in the first")
        # when: SIGTERM, then the lock goes
        sigterm_at = time.monotonic()
        os.kill(worker.pid, signal.SIGTERM)
        time.sleep(1.0)
        still_running_after_1s = worker.poll() is None
        released_at = time.monotonic()
    try:
        code = worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        system.kill_one(worker)
        raise
    exited_at = time.monotonic()

    # then: exit 0 soon after; the messages in hand handled; all the others back in the queue
    wait_for(lambda: consumers() == 0, timeout=5, what="the consumer gone")
    back = ready()
    handled = ProcessedMessage.objects.filter(consumer=CONSUMER).count()
    line = stopped_line(system)
    print(f"\n[sigterm, in a handler] exit code={code} {exited_at - sigterm_at:.1f}s after SIGTERM, "
          f"{exited_at - released_at:.2f}s after the lock went; handled={handled} back in the queue={back}; "
          f"'{line}'")
    assert code == 0
    assert still_running_after_1s, "the message in hand is finished, not abandoned"
    assert exited_at - released_at < 5
    assert 1 <= handled <= 4
    assert Reservation.objects.count() == handled
    assert back == 30 - handled
    assert re.search(rf"handled={handled} duplicates=0 retried=0 parked=0", line)

    # and a new worker handles exactly the others
    system.start("new_orders")
    wait_for(lambda: ProcessedMessage.objects.filter(consumer=CONSUMER).count() == 30 and ready() == 0,
             timeout=60, what="the rest handled")
    time.sleep(0.5)
    assert Reservation.objects.count() == 30
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 1000 - 30
    assert log_count(system, r"outcome=duplicate") == 0
    assert log_count(system, r"outcome=handled") == 30


def test_sigterm_while_busy_loses_nothing(fault_system, broker):
    # given: 200 orders waiting, a worker with prefetch 50 going through them
    call_command("load_demo_data", stock=1000, verbosity=0)
    system = fault_system
    total = 200
    publish_orders(broker, total)
    (worker,) = system.start("new_orders", args=["--prefetch", "50"])
    wait_for(lambda: ProcessedMessage.objects.filter(consumer=CONSUMER).count() >= 20, timeout=60,
             what="the worker busy")

    # when
    sigterm_at = time.monotonic()
    os.kill(worker.pid, signal.SIGTERM)
    code = worker.wait(timeout=15)
    exit_seconds = time.monotonic() - sigterm_at

    # then: everything is either handled (once) or back in the queue
    wait_for(lambda: consumers() == 0, timeout=5, what="the consumer gone")
    handled = ProcessedMessage.objects.filter(consumer=CONSUMER).count()
    back = ready()
    print(f"\n[sigterm, busy] exit code={code} after {exit_seconds:.2f}s; handled={handled} "
          f"back in the queue={back} lost={total - handled - back}; '{stopped_line(system)}'")
    assert code == 0
    assert exit_seconds < 5
    assert handled < total, "stopped with messages still waiting"
    assert handled + back == total
    assert Reservation.objects.count() == handled
    system.start("new_orders")
    wait_for(lambda: ProcessedMessage.objects.filter(consumer=CONSUMER).count() == total and ready() == 0,
             timeout=90, what="the rest handled")
    time.sleep(0.5)
    assert Reservation.objects.count() == total
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 1000 - total
    assert log_count(system, r"outcome=duplicate") == 0

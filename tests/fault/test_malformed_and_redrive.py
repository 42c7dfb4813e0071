"""Malformed messages on every queue are parked, never crash a worker; parked messages can be
re-driven once, by the service and through the admin."""

import json
import time
import uuid
from collections import Counter
from decimal import Decimal

import pika
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from messaging.broker import connect as broker_connect
from messaging.consumer import QueueWorker
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.services import dead_letters_redrive
from shop.models import Order, OrderStatusChange
from tests.fault.tools import (
    CONSUMERS,
    effects,
    json_body,
    messages_settled,
    now_iso,
    place_order,
    processed_matches_outbox,
    publish_raw,
    queue_depths,
    wait_for,
)

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

NOTIFIED_CONSUMER = "shop.customer_notifications"

# The message type each queue's consumer knows, a payload lacking required fields and one
# with fields of the wrong types.
QUEUE_SHAPES: dict[str, tuple[str, dict, dict]] = {
    "sim_actors": ("sim.stage_reached", {"order_id": None, "status": "picked_up"},
                   {"order_id": None, "shipment_id": ["SHP-X"], "status": "teleported"}),
    "new_orders": ("order.placed", {"order_id": None},
                   {"order_id": None, "recipient": ["x"], "shipping_address": "Narva mnt 5", "shipping_method": "x",
                    "items": [{"product_id": "PRD001", "quantity": "many"}]}),
    "order_confirmations": ("order.confirmed", {"message": "All items reserved"},
                            {"order_id": "not-a-uuid", "message": {"text": "x"}}),
    "shipping_orders": ("shipment.requested", {"order_id": None},
                        {"order_id": None, "recipient": {"name": "x"}, "shipping_address": ["Tallinn"],
                         "shipping_method": "express"}),
    "delivery_updates": ("shipment.status_changed", {"order_id": None, "status": "picked_up"},
                         {"order_id": None, "shipment_id": "SHP-X", "status": "teleported", "message": "m",
                          "timestamp": "yesterday"}),
    "customer_notifications": ("customer.notified", {"order_id": None},
                               {"order_id": None, "shipment_id": ["SHP-X"], "status": 42, "message": "m",
                                "timestamp": "not a time"}),
    "payment_requests": ("payment.requested", {"amount": "10.00"},
                         {"order_id": ["not", "a", "uuid"], "request_number": 0, "amount": "a lot",
                          "currency": "EURO", "method": ""}),
    "payment_results": ("payment.captured", {"order_id": None, "status": "captured"},
                        {"order_id": None, "status": "stolen", "reference": 7, "reason": "r"}),
    "fulfilment_requests": ("order.paid", {"message": "paid"}, {"order_id": "12345"}),
    "support_requests": ("order.cancelled", {"message": "cancelled"}, {"order_id": {"id": 1}, "message": "m"}),
}

# kind -> what the dead letter's error says
EXPECTED_ERRORS = {
    "bad_json": "not JSON",
    "not_utf8": "not JSON",
    "json_array": "must be a JSON object",
    "missing_fields": "payload",
    "wrong_types": "payload",
    "unknown_type": "unknown message type",
    "missing_message_id": "no message_id",
    "huge_body": "more than 262144",
}


def with_order_id(payload: dict) -> dict:
    return {k: (str(uuid.uuid4()) if v is None else v) for k, v in payload.items()}


def malformed_messages(queue: str):
    """(kind, body, message_id, type) for every kind of bad message on ``queue``."""
    msg_type, missing, wrong = QUEUE_SHAPES[queue]
    huge = {"order_id": str(uuid.uuid4()), "padding": "x" * (300 * 1024)}
    return [
        ("bad_json", b'{"order_id": "', str(uuid.uuid4()), msg_type),
        ("not_utf8", b"\xff\xfe{\xc3}", str(uuid.uuid4()), msg_type),
        ("json_array", json_body([{"order_id": str(uuid.uuid4())}]), str(uuid.uuid4()), msg_type),
        ("missing_fields", json_body(with_order_id(missing)), str(uuid.uuid4()), msg_type),
        ("wrong_types", json_body(with_order_id(wrong)), str(uuid.uuid4()), msg_type),
        ("unknown_type", json_body({"order_id": str(uuid.uuid4())}), str(uuid.uuid4()), "order.teleported"),
        ("missing_message_id", json_body(with_order_id(missing)), None, msg_type),
        ("huge_body", json_body(huge), str(uuid.uuid4()), msg_type),
    ]


def test_malformed_messages_on_every_queue_are_parked_and_workers_survive(fault_system, broker, make_customer):
    # given: the whole system running
    call_command("load_demo_data", verbosity=0)
    system = fault_system
    system.start_all(("relay", "scheduler", *CONSUMERS))
    started_pids = {name: [p.pid for p in system.alive(name)] for name in ("relay", "scheduler", *CONSUMERS)}
    broker.confirm_delivery()

    # when: eight kinds of bad message straight onto each of the five queues
    published = {}
    for queue in CONSUMERS:
        for kind, body, message_id, msg_type in malformed_messages(queue):
            publish_raw(broker, queue, body, message_id=message_id, msg_type=msg_type,
                        correlation_id=f"malformed-{kind}")
            published[(queue, f"malformed-{kind}")] = message_id or ""
    try:
        wait_for(lambda: DeadLetter.objects.count() >= len(published), timeout=60, what="every bad message parked")
        wait_for(lambda: all(depths[0] == 0 for depths in queue_depths(CONSUMERS).values()), timeout=30,
                 what="the queues drained")
    except AssertionError:
        print(f"parked={DeadLetter.objects.count()} of {len(published)}")
        print(system.log_tail(20))
        raise
    time.sleep(1)  # anything parked twice would show up now

    # then: each parked once, as invalid, with its error
    letters = list(DeadLetter.objects.all())
    parked = Counter((dl.queue, dl.correlation_id) for dl in letters)
    per_queue = Counter(dl.queue for dl in letters)
    alive = {name: [p.pid for p in system.alive(name)] for name in started_pids}
    print(f"\n[malformed] published={len(published)} parked={len(letters)} per queue={dict(per_queue)} "
          f"reasons={dict(Counter(dl.reason for dl in letters))} workers alive={sum(map(len, alive.values()))}/"
          f"{sum(map(len, started_pids.values()))} (same processes: {alive == started_pids})")
    assert len(letters) == len(published) == 8 * len(CONSUMERS)
    assert parked == Counter(dict.fromkeys(published, 1))
    for dl in letters:
        kind = dl.correlation_id.removeprefix("malformed-")
        assert dl.reason == DeadLetter.Reason.INVALID, (kind, dl.reason, dl.error)
        assert EXPECTED_ERRORS[kind] in dl.error, (dl.queue, kind, dl.error)
        assert dl.message_id == published[(dl.queue, dl.correlation_id)]
        assert dl.redriven_at is None
    assert alive == started_pids, "every worker still runs, none was restarted"
    assert not ProcessedMessage.objects.filter(message_id__in=[m for m in published.values() if m]).exists()
    assert OutboxMessage.objects.count() == 0, "no bad message caused any event"

    # and the next good order goes all the way
    _, client = make_customer()
    order_id = place_order(client, [("PRD002", 1)])
    wait_for(lambda: Order.objects.get(pk=order_id).status == "delivered" and messages_settled(), timeout=60,
             what="the good order delivered")
    found = effects([order_id])
    assert (found.lost, found.missing, found.doubled) == (0, [], [])
    assert DeadLetter.objects.count() == 8 * len(CONSUMERS)
    assert {name: [p.pid for p in system.alive(name)] for name in started_pids} == started_pids
    print(f"  good order after them: delivered, lost={found.lost} doubled={len(found.doubled)}")


def test_a_body_with_nul_bytes_is_parked_as_a_dead_letter(fault_system, broker):
    # given: the five queue workers
    system = fault_system
    system.start_all(CONSUMERS)
    started_pids = {name: [p.pid for p in system.alive(name)] for name in CONSUMERS}
    broker.confirm_delivery()

    # when: on each queue, a body that is not UTF-8 and holds a NUL byte
    for queue in CONSUMERS:
        publish_raw(broker, queue, b"\xff\xfe\x00{}", message_id=str(uuid.uuid4()),
                    msg_type=QUEUE_SHAPES[queue][0], correlation_id="malformed-nul")
    dlqs = [f"{queue}.dlq" for queue in CONSUMERS]

    def accounted() -> int:
        return DeadLetter.objects.count() + sum(depth[0] for depth in queue_depths(dlqs).values())

    wait_for(lambda: accounted() >= len(CONSUMERS), timeout=30, what="every NUL message parked somewhere")
    time.sleep(0.5)

    # then: nothing lost, no worker died ...
    parked = DeadLetter.objects.count()
    in_dlq = {queue: depth[0] for queue, depth in queue_depths(dlqs).items()}
    data_errors = sum(1 for path in system.log_dir.glob("*.log")
                      if "cannot contain NUL" in path.read_text(errors="replace"))
    print(f"\n[malformed NUL] published={len(CONSUMERS)} parked as DeadLetter={parked} "
          f"in the broker's dead-letter queues={in_dlq} workers logging a NUL DataError={data_errors}")
    assert parked + sum(in_dlq.values()) == len(CONSUMERS)
    assert {name: [p.pid for p in system.alive(name)] for name in CONSUMERS} == started_pids
    # ... and each is a DeadLetter row the admin can see
    assert parked == len(CONSUMERS)
    assert all(dl.reason == "invalid" and "not JSON" in dl.error for dl in DeadLetter.objects.all())


def notified_payload(order_id: str, status: str = "picked_up") -> dict:
    return {"order_id": order_id, "shipment_id": "SHP-REDRIVE1", "status": status,
            "message": "Picked up from the warehouse by VEH001", "timestamp": now_iso()}


def order_with_id(order_id: str, customer) -> Order:
    """An order as the shop stores it, with a chosen id (test data, no event)."""
    order = Order.objects.create(
        id=order_id, customer=customer, contact_name="Jaan Tamm", contact_email="jaan.tamm@example.com",
        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"}, shipping_method="express",
        payment_method="credit_card", total=Decimal("1299.99"),
    )
    OrderStatusChange.objects.create(order=order, status="new", note="order placed")
    return order


def redriven_handled(order_id: str) -> bool:
    copies = OutboxMessage.objects.filter(producer="redrive", correlation_id=order_id)
    return (copies.exists() and not copies.filter(published_at__isnull=True).exists()
            and ProcessedMessage.objects.filter(consumer=NOTIFIED_CONSUMER,
                                                message_id__in=[str(m.message_id) for m in copies]).exists())


def test_a_parked_message_is_redriven_once_and_handled_once(fault_system, broker, make_customer):
    # given: a customer.notified for an order the shop does not have (yet) is parked ...
    system = fault_system
    system.start("relay")
    system.start("customer_notifications")
    customer, _ = make_customer()
    order_id = str(uuid.uuid4())
    original_id = str(uuid.uuid4())
    broker.confirm_delivery()
    publish_raw(broker, "customer_notifications", json_body(notified_payload(order_id)), message_id=original_id,
                msg_type="customer.notified", correlation_id=order_id)
    wait_for(lambda: DeadLetter.objects.exists(), timeout=30, what="the message parked")
    letter = DeadLetter.objects.get()
    assert (letter.reason, letter.message_id) == ("invalid", original_id)
    assert "does not exist" in letter.error
    # ... and then the order is there (say, restored from a backup)
    order_with_id(order_id, customer)

    # when: re-driven
    count, problems = dead_letters_redrive(dead_letter_ids=[letter.pk])
    wait_for(lambda: redriven_handled(order_id), timeout=30, what="the re-driven copy handled")
    # and re-driven again
    again = dead_letters_redrive(dead_letter_ids=[letter.pk])
    time.sleep(1.5)  # time enough for a second copy to be relayed and handled, were there one

    # then: one copy, handled once, its effect once
    copies = list(OutboxMessage.objects.filter(producer="redrive"))
    order = Order.objects.get(pk=order_id)
    handled = ProcessedMessage.objects.filter(consumer=NOTIFIED_CONSUMER).count()
    letter.refresh_from_db()
    print(f"\n[redrive] first={count, problems} second={again} copies={len(copies)} handled={handled} "
          f"order status={order.status} dead letters={DeadLetter.objects.count()}")
    assert (count, problems) == (1, [])
    assert again[0] == 0
    assert len(again[1]) == 1
    assert "already re-driven" in again[1][0]
    assert len(copies) == 1
    assert (copies[0].causation_id, copies[0].type, copies[0].queue) == (original_id, "customer.notified",
                                                                          "customer_notifications")
    assert str(copies[0].message_id) != original_id
    assert json.loads(letter.body) == copies[0].payload
    assert handled == 1
    assert ProcessedMessage.objects.filter(message_id=original_id).count() == 0
    assert (order.status, order.delivery_status, order.shipment_id) == ("picked_up", "picked_up", "SHP-REDRIVE1")
    assert list(order.history.values_list("status", flat=True)) == ["new", "picked_up"]
    assert letter.redriven_at is not None
    assert DeadLetter.objects.count() == 1
    assert messages_settled()
    assert processed_matches_outbox() == (1, 1, 1)


def test_admin_action_redrives_a_dead_letter_once(fault_system, make_customer):
    # given: a parked, well-formed customer.notified for an existing order, and a staff user
    system = fault_system
    system.start("relay")
    system.start("customer_notifications")
    customer, _ = make_customer()
    order_id = str(uuid.uuid4())
    order_with_id(order_id, customer)
    letter = DeadLetter.objects.create(
        queue="customer_notifications", message_id=str(uuid.uuid4()), type="customer.notified",
        correlation_id=order_id, headers={"type": "customer.notified"},
        body=json.dumps(notified_payload(order_id)), reason=DeadLetter.Reason.RETRIES_EXHAUSTED,
        error="OperationalError: the database was away", attempts=4,
    )
    staff = get_user_model().objects.create_user("ops", password="x", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    changelist = "/admin/messaging/deadletter/"
    action = {"action": "redrive", "_selected_action": [str(letter.pk)], "index": "0"}

    # when: the admin action, twice
    first = admin.post(changelist, action, follow=True)
    wait_for(lambda: redriven_handled(order_id), timeout=30, what="the re-driven copy handled")
    second = admin.post(changelist, action, follow=True)
    time.sleep(1.5)

    # then
    first_messages = [str(m) for m in first.context["messages"]]
    second_messages = [str(m) for m in second.context["messages"]]
    order = Order.objects.get(pk=order_id)
    print(f"\n[admin redrive] first={first_messages} second={second_messages} "
          f"copies={OutboxMessage.objects.filter(producer='redrive').count()} "
          f"handled={ProcessedMessage.objects.filter(consumer=NOTIFIED_CONSUMER).count()} order={order.status}")
    assert first.status_code == second.status_code == 200
    assert "1 message(s) sent back to their queue." in first_messages
    assert "0 message(s) sent back to their queue." in second_messages
    assert any("already re-driven" in m for m in second_messages)
    assert OutboxMessage.objects.filter(producer="redrive").count() == 1
    assert ProcessedMessage.objects.filter(consumer=NOTIFIED_CONSUMER).count() == 1
    assert (order.status, order.delivery_status) == ("picked_up", "picked_up")
    letter.refresh_from_db()
    assert letter.redriven_at is not None
    assert DeadLetter.objects.count() == 1


class _AckLost:
    """A consumer channel whose connection is lost just before the ack goes out."""

    def __init__(self, channel) -> None:
        self._channel = channel

    def basic_ack(self, *args, **kwargs):
        raise pika.exceptions.StreamLostError("Stream connection lost (simulated)")

    def __getattr__(self, name):
        return getattr(self._channel, name)


def test_a_bad_message_redelivered_after_a_lost_ack_is_parked_once(transactional_db, broker):
    # given: a message the shop cannot take (its order does not exist); the worker parks it and
    # loses the connection before the ack
    message_id, order_id = str(uuid.uuid4()), str(uuid.uuid4())
    broker.confirm_delivery()
    publish_raw(broker, "customer_notifications", json_body(notified_payload(order_id)), message_id=message_id,
                msg_type="customer.notified", correlation_id=order_id)
    worker = QueueWorker("customer_notifications", prefetch=1, install_signal_handlers=False)
    connection = broker_connect()
    channel = connection.channel()
    method, properties, body = channel.basic_get("customer_notifications")
    with pytest.raises(pika.exceptions.StreamLostError):
        worker._handle_delivery(_AckLost(channel), method, properties, body)
    connection.close()  # unacked: the broker delivers it again

    # when: a worker gets it again
    stats = QueueWorker("customer_notifications", prefetch=1, install_signal_handlers=False).run(
        max_messages=1, idle_exit_seconds=5)

    # then
    rows = DeadLetter.objects.filter(message_id=message_id).count()
    count, problems = dead_letters_redrive(
        dead_letter_ids=list(DeadLetter.objects.filter(message_id=message_id).values_list("pk", flat=True)))
    copies = set(OutboxMessage.objects.filter(producer="redrive").values_list("message_id", flat=True))
    print(f"\n[park, ack lost] second worker parked={stats.parked}; DeadLetter rows for the message={rows}; "
          f"re-driving all of them -> {count} copies with {len(copies)} distinct message ids, problems={problems}")
    assert stats.parked == 1
    assert rows == 1
    assert count == len(copies) == 1

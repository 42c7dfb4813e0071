"""An order's status only moves forward and never leaves a final state, whatever order the
messages arrive in: a late or repeated message (a new message id each time, so the inbox's
dedupe does not hide it) changes neither the status, nor the history, nor what the shop sends."""

import contextlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from config.errors import Conflict
from messaging.envelope import InvalidMessage, Message
from messaging.models import OutboxMessage
from shop.models import Order
from shop.services import Contact, OrderItem, order_cancel, order_place
from tests.handling import handled

pytestmark = pytest.mark.django_db

STAGES = ("awaiting_vehicle", "vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered")
NOTES = {
    "new": "order placed",
    "confirmed": "All items reserved",
    "rejected": "Not enough stock for PRD001",
    "paid": "payment captured (PAY-1)",
    "payment_failed": "payment declined: card declined",
    "cancelled": "cancelled by the customer",
    "awaiting_vehicle": "Waiting for a vehicle",
    "vehicle_assigned": "Vehicle VEH001 assigned",
    "picked_up": "Picked up by the driver",
    "in_transit": "On its way",
    "out_for_delivery": "Out for delivery",
    "delivered": "Delivered",
}
# The steps of a whole delivery, each a message the shop receives.
TO_THE_DOOR = ("confirmed", "captured", "picked_up", "in_transit", "out_for_delivery", "delivered")


@pytest.fixture
def order(catalogue, make_customer) -> Order:
    customer, _ = make_customer("jaan", "jaan.tamm@example.com")
    return order_place(
        customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
        items=[OrderItem(product_id="PRD001", quantity=1), OrderItem(product_id="PRD003", quantity=2)],
        shipping_method="express", payment_method="credit_card",
    )


def message(order: Order, step: str) -> Message:
    """The message that brings ``step`` to the shop, as its sender's contract shapes it."""
    order_id = str(order.id)
    if step in ("confirmed", "rejected"):
        queue, type_ = "order_confirmations", f"order.{step}"
        payload: dict[str, Any] = {"order_id": order_id, "message": NOTES[step]}
        if step == "confirmed":
            payload["items"] = [{"product_id": "PRD001", "quantity": 1}, {"product_id": "PRD003", "quantity": 2}]
        else:
            payload["unavailable"] = [{"product_id": "PRD001", "requested": 1, "available": 0}]
    elif step in ("captured", "declined"):
        queue, type_ = "payment_results", f"payment.{step}"
        payload = {"order_id": order_id, "payment_id": str(uuid.uuid4()), "status": step, "amount": "1539.97",
                   "currency": "EUR", "reference": "PAY-1" if step == "captured" else "",
                   "reason": "card declined" if step == "declined" else ""}
    elif step == "deadline":
        queue, type_ = "payment_results", "payment.deadline_due"
        payload = {"order_id": order_id, "request_number": 1}
    elif step in STAGES:
        queue, type_ = "customer_notifications", "customer.notified"
        payload = {"order_id": order_id, "shipment_id": "SHP-1", "status": step, "message": NOTES[step],
                   "timestamp": (timezone.now() + timedelta(seconds=STAGES.index(step))).isoformat(),
                   "notification_id": STAGES.index(step) + 1}
    else:
        raise AssertionError(f"no message for step {step!r}")
    return Message(queue=queue, message_id=str(uuid.uuid4()), type=type_, correlation_id=order_id, causation_id="",
                   payload=payload, producer="test")


def receive(order: Order, step: str) -> None:
    """The shop receives ``step``: through the handler its queue's worker runs (or, for a
    cancellation, the customer's request)."""
    if step == "cancel":
        with contextlib.suppress(Conflict):  # refused, as it must be once picking started or the order ended
            order_cancel(user=order.customer.user, order_id=order.id)
        return
    msg = message(order, step)
    handled(msg)


def history(order: Order) -> list[tuple[str, str]]:
    return list(order.history.order_by("id").values_list("status", "note"))


def state(order: Order) -> tuple:
    """Everything a late message must leave as it is: the order's progress and what the shop sent."""
    order = Order.objects.get(pk=order.pk)
    sent = list(OutboxMessage.objects.filter(correlation_id=str(order.id)).order_by("id")
                .values_list("type", "payload"))
    return (order.status, order.payment_status, order.payment_requests, order.delivery_status, history(order), sent)


LATE = [
    # (what happened, the late or repeated message, the status the order keeps)
    ("paid", ["confirmed", "captured"], "confirmed", "paid"),
    ("confirmed", ["confirmed"], "confirmed", "confirmed"),
    ("confirmed", ["confirmed"], "rejected", "confirmed"),
    ("rejected", ["rejected"], "confirmed", "rejected"),
    ("rejected", ["rejected"], "rejected", "rejected"),
    ("cancelled while new", ["cancel"], "confirmed", "cancelled"),
    ("cancelled", ["confirmed", "cancel"], "captured", "cancelled"),
    ("cancelled", ["confirmed", "cancel"], "declined", "cancelled"),
    ("cancelled", ["confirmed", "cancel"], "deadline", "cancelled"),
    ("payment failed", ["confirmed", "declined"], "captured", "payment_failed"),
    ("payment failed", ["confirmed", "declined"], "declined", "payment_failed"),
    ("payment failed", ["confirmed", "declined"], "confirmed", "payment_failed"),
    ("payment failed", ["confirmed", "declined"], "cancel", "payment_failed"),
    ("paid", ["confirmed", "captured"], "captured", "paid"),
    ("paid", ["confirmed", "captured"], "declined", "paid"),
    ("paid", ["confirmed", "captured"], "deadline", "paid"),
    ("paid", ["confirmed", "captured"], "cancel", "paid"),
    ("picked up", list(TO_THE_DOOR[:3]), "captured", "picked_up"),
    ("picked up", list(TO_THE_DOOR[:3]), "confirmed", "picked_up"),
    ("picked up", list(TO_THE_DOOR[:3]), "picked_up", "picked_up"),
    ("picked up", list(TO_THE_DOOR[:3]), "vehicle_assigned", "picked_up"),
    ("in transit", list(TO_THE_DOOR[:4]), "picked_up", "in_transit"),
    ("in transit", list(TO_THE_DOOR[:4]), "in_transit", "in_transit"),
    ("out for delivery", list(TO_THE_DOOR[:5]), "picked_up", "out_for_delivery"),
    ("out for delivery", list(TO_THE_DOOR[:5]), "in_transit", "out_for_delivery"),
    ("delivered", list(TO_THE_DOOR), "in_transit", "delivered"),
    ("delivered", list(TO_THE_DOOR), "out_for_delivery", "delivered"),
    ("delivered", list(TO_THE_DOOR), "delivered", "delivered"),
    ("delivered", list(TO_THE_DOOR), "confirmed", "delivered"),
    ("delivered", list(TO_THE_DOOR), "captured", "delivered"),
    ("delivered", list(TO_THE_DOOR), "declined", "delivered"),
    ("delivered", list(TO_THE_DOOR), "cancel", "delivered"),
]
STATUS_OF_STEP = {"confirmed": "confirmed", "rejected": "rejected", "captured": "paid", "declined": "payment_failed",
                  "cancel": "cancelled", "picked_up": "picked_up", "in_transit": "in_transit",
                  "out_for_delivery": "out_for_delivery", "delivered": "delivered"}


@pytest.mark.parametrize(("label", "steps", "late", "status"), LATE,
                         ids=[f"{late} after {label}" for label, _, late, _ in LATE])
def test_a_late_or_repeated_message_changes_nothing(order, label, steps, late, status):
    # given: the order moved through ``steps``
    for step in steps:
        receive(order, step)
    expected_history = [("new", NOTES["new"])] + [(STATUS_OF_STEP[s], NOTES[STATUS_OF_STEP[s]]) for s in steps]
    before = state(order)
    assert before[0] == status
    assert before[4] == expected_history
    # when: a message that belongs to an earlier moment, or repeats the last one
    receive(order, late)
    # then: the same status, the same history, nothing more sent
    after = state(order)
    assert after[0] == status
    assert after[4] == expected_history
    assert after == before


ENDED = {"rejected": ["rejected"], "payment_failed": ["confirmed", "declined"], "cancelled": ["confirmed", "cancel"]}


@pytest.mark.parametrize("status", sorted(ENDED))
def test_an_order_that_ended_before_shipping_stays_ended_whatever_stage_arrives(order, status):
    # given: an order that ended before it was shipped
    for step in ENDED[status]:
        receive(order, step)
    before = state(order)
    # when: stray delivery news arrives, every stage up to delivered (stages rank above the status)
    for stage in STAGES:
        receive(order, stage)
    # then: the order keeps its final status and its history; the shop sends nothing
    after = state(order)
    assert after[0] == status
    assert after[4] == before[4] == [("new", NOTES["new"])] + [
        (STATUS_OF_STEP[step], NOTES[STATUS_OF_STEP[step]]) for step in ENDED[status]]
    assert after[5] == before[5]


def test_an_order_moves_forward_through_every_status_to_the_door(order):
    # when
    for step in ("confirmed", "captured", *STAGES):
        receive(order, step)
    # then: one history row per order status, in order, each with what the customer was told
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.delivery_status, order.delivery_message, order.shipment_id) == (
        "delivered", "delivered", "Delivered", "SHP-1")
    assert history(order) == [(status, NOTES[status]) for status in (
        "new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered")]


def test_a_delivery_stage_arriving_early_moves_the_order_past_the_ones_it_skipped(order):
    # given: paid
    receive(order, "confirmed")
    receive(order, "captured")
    # when: out_for_delivery arrives before picked_up and in_transit, which come late
    for step in ("out_for_delivery", "picked_up", "in_transit"):
        receive(order, step)
    # then: the order is out for delivery, and the stages it skipped are not written after it
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.delivery_status) == ("out_for_delivery", "out_for_delivery")
    assert history(order) == [(status, NOTES[status]) for status in ("new", "confirmed", "paid", "out_for_delivery")]


def test_the_stages_before_pickup_follow_the_delivery_but_not_the_order_status(order):
    receive(order, "confirmed")
    receive(order, "captured")
    receive(order, "vehicle_assigned")
    receive(order, "awaiting_vehicle")  # late
    order = Order.objects.get(pk=order.pk)
    assert (order.status, order.delivery_status, order.delivery_message) == (
        "paid", "vehicle_assigned", "Vehicle VEH001 assigned")
    assert [status for status, _ in history(order)] == ["new", "confirmed", "paid"]


@pytest.mark.parametrize(("step", "change"), [
    ("picked_up", {"status": "teleported"}),
    ("confirmed", {"order_id": "not-a-uuid"}),
    ("captured", {"amount": "-1"}),
    ("deadline", {"request_number": 0}),
])
def test_a_payload_that_breaks_its_contract_is_refused_and_changes_nothing(order, step, change):
    msg = message(order, step)
    broken = Message(**{**msg.__dict__, "payload": {**msg.payload, **change}})
    before = state(order)
    with pytest.raises(InvalidMessage):
        handled(broken)
    assert state(order) == before

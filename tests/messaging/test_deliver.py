"""deliver(): one transaction per message (or per batch of messages) with the processed records in it."""

import uuid

import pytest

from contracts import Contract
from messaging.consumer import DUPLICATE, HANDLED, deliver, deliver_together
from messaging.envelope import InvalidMessage, Message, current_message
from messaging.models import OutboxMessage, ProcessedMessage
from messaging.registry import message_batch_handler, message_handler, route_for
from messaging.topology import NEW_ORDERS
from tests.messaging.examples import order_placed_payload
from warehouse.models import Reservation, StockItem

pytestmark = pytest.mark.django_db(transaction=True)


def order_placed(order_id: str, quantity: int) -> Message:
    return Message(
        queue=NEW_ORDERS, message_id=str(uuid.uuid4()), type="order.placed", correlation_id=order_id,
        causation_id="", payload=order_placed_payload(order_id, quantity),
    )


def test_a_message_is_handled_once(catalogue):
    order_id = str(uuid.uuid4())
    message = order_placed(order_id, 2)
    route = route_for(NEW_ORDERS)
    # when
    outcome = deliver(route, message)
    # then: the reservation, its event and the processed record
    assert outcome == HANDLED
    assert Reservation.objects.get(order_id=order_id).status == "reserved"
    assert OutboxMessage.objects.filter(correlation_id=order_id, type="order.confirmed").count() == 1
    assert ProcessedMessage.objects.filter(consumer=route.consumer, message_id=message.message_id).count() == 1
    # a redelivery is a duplicate and changes nothing
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand
    assert deliver(route, message) == DUPLICATE
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock
    assert OutboxMessage.objects.filter(correlation_id=order_id).count() == 1


def test_a_failing_handler_rolls_back_everything_with_the_processed_record(catalogue, monkeypatch):
    order_id = str(uuid.uuid4())
    message = order_placed(order_id, 1)
    route = route_for(NEW_ORDERS)
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand

    def outbox_down(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("warehouse.services.outbox_publish", outbox_down)
    # when: the service fails after it changed stock and wrote its reservation
    with pytest.raises(RuntimeError):
        deliver(route, message)
    # then: none of it stayed, so a retry starts clean
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock
    assert not Reservation.objects.filter(order_id=order_id).exists()
    assert not ProcessedMessage.objects.filter(message_id=message.message_id).exists()
    monkeypatch.undo()
    assert deliver(route, message) == HANDLED
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock - 1


def test_messages_handled_together_share_one_transaction_all_or_nothing(catalogue, monkeypatch):
    route = route_for(NEW_ORDERS)
    orders = [str(uuid.uuid4()) for _ in range(3)]
    messages = [order_placed(order_id, 1) for order_id in orders]
    stock = StockItem.objects.get(sku="PRD001").quantity_on_hand
    real_publish = __import__("warehouse.services", fromlist=["outbox_publish"]).outbox_publish
    published = []

    def third_fails(*args, **kwargs):
        published.append(args)
        if len(published) == 3:
            raise RuntimeError("outbox unavailable")
        return real_publish(*args, **kwargs)

    # when: the third handler fails after the first two did all their work
    monkeypatch.setattr("warehouse.services.outbox_publish", third_fails)
    with pytest.raises(RuntimeError):
        deliver_together(route, messages)
    # then: none of the three stayed, processed records included
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock
    assert not Reservation.objects.filter(order_id__in=orders).exists()
    assert not ProcessedMessage.objects.filter(message_id__in=[m.message_id for m in messages]).exists()
    monkeypatch.undo()
    # when: all three (and a redelivery of the first) together, with nothing failing
    outcomes = deliver_together(route, [*messages, messages[0]])
    # then: each handled once, in order; the repeat is a duplicate
    assert outcomes == [HANDLED, HANDLED, HANDLED, DUPLICATE]
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == stock - 3
    assert Reservation.objects.filter(order_id__in=orders, status="reserved").count() == 3
    assert OutboxMessage.objects.filter(correlation_id__in=orders, type="order.confirmed").count() == 3


# -- a batch handler: the consecutive messages of its type at once ------------------------------
BATCH_QUEUE = "test_batch_handler"
seen: list = []


class Counted(Contract):
    TYPE = "test.counted"
    n: int


class Single(Contract):
    TYPE = "test.single"


class Skipped(Contract):
    TYPE = "test.skipped"


@message_batch_handler(BATCH_QUEUE, Counted, consumer="tests.batch")
def _counted(batch):
    ns = tuple(data.n for data in batch.payloads)  # what a batch handler reads at once
    for data, message in batch.each():
        seen.append(("counted", ns, data.n, message.message_id, current_message.get().message_id))


@message_handler(BATCH_QUEUE, Single, consumer="tests.batch")
def _single(data, message):
    seen.append(("single", type(data).__name__, message.message_id, current_message.get().message_id))


def test_messages_with_a_batch_handler_reach_it_together_in_runs_duplicates_left_out():
    seen.clear()
    route = route_for(BATCH_QUEUE)

    def make(message_type: str, payload: dict | None = None) -> Message:
        return Message(queue=BATCH_QUEUE, message_id=str(uuid.uuid4()), type=message_type,
                       correlation_id="c", causation_id="", payload=payload or {})

    a1, a2, b1, a3 = (make("test.counted", {"n": 1}), make("test.counted", {"n": "2"}), make("test.single"),
                      make("test.counted", {"n": 3}))
    # when: two of the batch handler's type, another type, one more, and a repeat of the first
    outcomes = deliver_together(route, [a1, a2, b1, a3, a1])
    # then: the first two reach it together, validated (n as the contract's int), the other type
    # on its own, the third alone; each message handled once, in order, as the current message
    # of its own turn
    assert outcomes == [HANDLED, HANDLED, HANDLED, HANDLED, DUPLICATE]
    assert seen == [
        ("counted", (1, 2), 1, a1.message_id, a1.message_id),
        ("counted", (1, 2), 2, a2.message_id, a2.message_id),
        ("single", "Single", b1.message_id, b1.message_id),
        ("counted", (3,), 3, a3.message_id, a3.message_id),
    ]
    # delivered again, all are duplicates and nothing runs
    seen.clear()
    assert deliver_together(route, [a2, a3]) == [DUPLICATE, DUPLICATE]
    assert seen == []
    # one delivered alone (a worker handling it on its own) reaches the batch handler alone
    a4 = make("test.counted", {"n": 4})
    assert deliver(route, a4) == HANDLED
    assert seen == [("counted", (4,), 4, a4.message_id, a4.message_id)]


def test_an_invalid_payload_in_a_batch_fails_it_before_any_handler_runs_and_records_none():
    seen.clear()
    route = route_for(BATCH_QUEUE)
    good, bad = (Message(queue=BATCH_QUEUE, message_id=str(uuid.uuid4()), type="test.counted", correlation_id="c",
                         causation_id="", payload=payload) for payload in ({"n": 1}, {"n": "many"}))
    # when
    with pytest.raises(InvalidMessage, match=r"^invalid test.counted payload: \{'n': 'Input should be a valid "
                                             r"integer, unable to parse string as an integer'\}$"):
        deliver_together(route, [good, bad])
    # then: the batch handler never ran, nothing recorded (the worker then handles each alone)
    assert seen == []
    assert not ProcessedMessage.objects.filter(message_id__in=[good.message_id, bad.message_id]).exists()
    assert deliver(route, good) == HANDLED
    assert seen == [("counted", (1,), 1, good.message_id, good.message_id)]


@message_batch_handler(BATCH_QUEUE, Skipped, consumer="tests.batch")
def _skips_the_last(batch):
    for _data, message in batch.each():
        seen.append(("skipping", message.message_id))
        if len(seen) == len(batch) - 1:
            break


def test_a_batch_handler_that_leaves_a_message_unhandled_fails_and_records_none():
    seen.clear()
    route = route_for(BATCH_QUEUE)
    messages = [Message(queue=BATCH_QUEUE, message_id=str(uuid.uuid4()), type="test.skipped",
                        correlation_id="c", causation_id="", payload={}) for _ in range(3)]
    # when: the handler leaves the loop in the second message's turn
    with pytest.raises(RuntimeError, match="handled 1 of 3 messages"):
        deliver_together(route, messages)
    assert len(seen) == 2
    # then: nothing is recorded as processed (the worker retries, then parks them)
    assert not ProcessedMessage.objects.filter(message_id__in=[m.message_id for m in messages]).exists()

"""Handlers are registered for a contract: the registry validates the payload once, before the
handler runs, and hands it the contract's instance with the envelope."""

import json
import uuid
from decimal import Decimal
from typing import Literal

import pika
import pytest

from contracts import Contract
from messaging.consumer import HANDLED, QueueWorker, deliver
from messaging.envelope import InvalidMessage, Message
from messaging.models import DeadLetter, ProcessedMessage
from messaging.registry import message_handler, route_for
from messaging.topology import NEW_ORDERS, PAYMENT_RESULTS
from shop.handlers import on_payment_result
from tests.messaging.examples import order_placed_payload
from warehouse.models import Reservation, StockItem

REGISTRY_QUEUE = "test_registry"
received: list = []


class Weighed(Contract):
    TYPE = "test.weighed"
    parcel_id: uuid.UUID
    kilograms: Decimal


class Settled(Contract):
    TYPES = ("test.settled_paid", "test.settled_owed")
    status: Literal["paid", "owed"]

    def _message_type_of_fields(self) -> str:
        return f"test.settled_{self.status}"


@message_handler(REGISTRY_QUEUE, Weighed, consumer="tests.registry")
def on_weighed(data: Weighed, message: Message) -> None:
    received.append((data, message))


@message_handler(REGISTRY_QUEUE, Settled, consumer="tests.registry")
def on_settled(data: Settled, message: Message) -> None:
    received.append((data, message))


def envelope(message_type: str, payload: dict) -> Message:
    return Message(queue=REGISTRY_QUEUE, message_id=str(uuid.uuid4()), type=message_type, correlation_id="order-7",
                   causation_id="cause-3", payload=payload, producer="scales",
                   headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})


@pytest.mark.django_db(transaction=True)
def test_a_handler_receives_the_validated_contract_and_the_envelope():
    received.clear()
    parcel_id = uuid.uuid4()
    message = envelope("test.weighed", {"parcel_id": str(parcel_id), "kilograms": "2.50", "unknown": 1})
    # when
    outcome = deliver(route_for(REGISTRY_QUEUE), message)
    # then: the contract's instance (the id a UUID, the weight a Decimal), and the very envelope
    assert outcome == HANDLED
    [(data, got)] = received
    assert data == Weighed(parcel_id=parcel_id, kilograms=Decimal("2.50"))
    assert got is message
    assert (got.message_id, got.correlation_id, got.causation_id, got.producer, got.headers["traceparent"]) == (
        message.message_id, "order-7", "cause-3", "scales", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


@pytest.mark.django_db(transaction=True)
def test_a_payload_that_breaks_its_contract_never_reaches_the_handler():
    received.clear()
    message = envelope("test.weighed", {"parcel_id": "not-a-uuid"})
    # when
    with pytest.raises(InvalidMessage) as raised:
        deliver(route_for(REGISTRY_QUEUE), message)
    # then: the validation error, nothing handled, nothing recorded
    assert str(raised.value) == ("invalid test.weighed payload: {'parcel_id': 'Input should be a valid UUID, "
                                 "invalid character: found `n` at 0', 'kilograms': 'Field required'}")
    assert received == []
    assert not ProcessedMessage.objects.filter(message_id=message.message_id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_contract_of_several_types_is_registered_for_each_and_must_match_the_envelope():
    received.clear()
    route = route_for(REGISTRY_QUEUE)
    # then: one handler, every type
    assert {t: route.handler_for(t) for t in Settled.TYPES} == {t: on_settled for t in Settled.TYPES}
    assert route_for(PAYMENT_RESULTS).handlers == {
        "payment.captured": on_payment_result, "payment.declined": on_payment_result,
        "payment.refunded": on_payment_result, "payment.deadline_due": route_for(PAYMENT_RESULTS).handlers[
            "payment.deadline_due"]}
    # when: each type with its payload
    assert deliver(route, envelope("test.settled_owed", {"status": "owed"})) == HANDLED
    assert [data for data, _ in received] == [Settled(status="owed")]
    # when: a payload that says it is another of the contract's types than its envelope
    with pytest.raises(InvalidMessage, match=r"^invalid test.settled_paid payload: "
                                             r"\{'payload': 'the payload is of type test.settled_owed'\}$"):
        deliver(route, envelope("test.settled_paid", {"status": "owed"}))
    assert len(received) == 1


def test_a_handler_is_registered_for_a_contract_class_only():
    a_type_name = "test.weighed"  # as handlers were registered before
    with pytest.raises(TypeError, match="registered for a contract class"):
        message_handler(REGISTRY_QUEUE, a_type_name, consumer="tests.registry")


def test_a_contract_instance_knows_its_message_type():
    assert Weighed(parcel_id=uuid.uuid4(), kilograms=1).message_type() == "test.weighed"
    assert Settled(status="paid").message_type() == "test.settled_paid"
    assert Settled.message_types() == ("test.settled_paid", "test.settled_owed")


@pytest.mark.django_db(transaction=True)
def test_a_worker_parks_an_invalid_payload_with_the_validation_error(catalogue, broker):
    # given: an order with no items, straight onto the queue
    order_id = str(uuid.uuid4())
    broker.basic_publish(
        exchange="", routing_key=NEW_ORDERS, body=json.dumps({**order_placed_payload(order_id), "items": []}).encode(),
        properties=pika.BasicProperties(message_id="no-items", type="order.placed", correlation_id=order_id,
                                        delivery_mode=2))
    # when
    stats = QueueWorker(NEW_ORDERS, prefetch=10, install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then: parked with the contract's complaint; the warehouse never saw it
    assert (stats.handled, stats.parked) == (0, 1)
    letter = DeadLetter.objects.get(message_id="no-items")
    assert (letter.reason, letter.error) == (
        "invalid", "InvalidMessage: invalid order.placed payload: "
                   "{'items': 'List should have at least 1 item after validation, not 0'}")
    assert not Reservation.objects.exists()
    assert StockItem.objects.get(sku="PRD001").quantity_on_hand == 10

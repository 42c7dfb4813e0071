"""What arrives on delivery_updates and support_requests, checked against its contract."""

import uuid

import pytest
from django.utils import timezone

from messaging.consumer import DUPLICATE, HANDLED, deliver
from messaging.envelope import InvalidMessage, Message
from messaging.models import OutboxMessage, ProcessedMessage
from messaging.registry import route_for
from messaging.topology import DELIVERY_UPDATES, SUPPORT_REQUESTS
from support.models import CustomerContact, CustomerNotification, TrackingRecord

pytestmark = pytest.mark.django_db


def message(queue: str, message_type: str, payload: dict) -> Message:
    return Message(queue=queue, message_id=str(uuid.uuid4()), type=message_type,
                   correlation_id=str(payload.get("order_id", "")), causation_id="", payload=payload)


def order_placed(order_id, **changes) -> dict:
    payload = {
        "order_id": str(order_id), "recipient": "Jaan Tamm", "contact_email": "delivery@example.com",
        "account_email": "jaan.tamm@example.com", "language": "en",
        "shipping_address": {"city": "Tallinn", "country": "Estonia"}, "shipping_method": "standard",
        "items": [{"product_id": "PRD001", "quantity": 1}], "total": "1299.99", "currency": "EUR",
        "placed_at": timezone.now().isoformat(),
    }
    return {key: value for key, value in {**payload, **changes}.items() if value is not None}


def status_changed(order_id, **changes) -> dict:
    payload = {"order_id": str(order_id), "shipment_id": "SHP-H1", "status": "picked_up", "message": "Picked up",
               "vehicle_id": "VEH001", "timestamp": timezone.now().isoformat()}
    return {key: value for key, value in {**payload, **changes}.items() if value is not None}


def test_a_placed_order_gives_customer_service_its_contact_once():
    # given
    order_id = uuid.uuid4()
    placed = message(SUPPORT_REQUESTS, "order.placed", order_placed(order_id))
    # when: delivered, then redelivered
    outcomes = [deliver(route_for(SUPPORT_REQUESTS), placed), deliver(route_for(SUPPORT_REQUESTS), placed)]
    # then
    assert outcomes == [HANDLED, DUPLICATE]
    contact = CustomerContact.objects.get(order_id=order_id)
    # mailed at the account's address, in the shipping country's language
    assert (contact.name, contact.email, contact.language, contact.shipping_method) == (
        "Jaan Tamm", "jaan.tamm@example.com", "et", "standard")
    assert list(CustomerNotification.objects.values_list("status", "recipient")) == [
        ("received", "jaan.tamm@example.com")]


@pytest.mark.parametrize(("country", "language", "expected"), [
    ("Estonia", "en", "et"), ("EE", "", "et"), ("eesti", "en-us", "et"),
    ("Finland", "et", "et"), ("Finland", "en-gb", "en"), ("Latvia", "lv", "en"), ("", "", "en"),
])
def test_the_customers_language_is_the_shipping_countrys_else_the_orders_else_the_default(country, language,
                                                                                         expected):
    # given
    order_id = uuid.uuid4()
    payload = order_placed(order_id, language=language, shipping_address={"city": "X", "country": country})
    # when
    deliver(route_for(SUPPORT_REQUESTS), message(SUPPORT_REQUESTS, "order.placed", payload))
    # then
    assert CustomerContact.objects.get(order_id=order_id).language == expected


def test_a_placed_order_without_the_accounts_address_mails_nobody():
    # given: an order.placed of an earlier version (no account_email): its contact_email is the order's
    order_id = uuid.uuid4()
    payload = order_placed(order_id, account_email=None, language=None)
    # when
    deliver(route_for(SUPPORT_REQUESTS), message(SUPPORT_REQUESTS, "order.placed", payload))
    # then
    assert CustomerContact.objects.get(order_id=order_id).email == ""
    assert list(CustomerNotification.objects.values_list("status", "recipient")) == [("received", "")]


def test_a_rejection_and_the_start_of_picking_are_told_to_the_customer():
    # given
    rejected, paid = uuid.uuid4(), uuid.uuid4()
    # when
    deliver(route_for(SUPPORT_REQUESTS), message(SUPPORT_REQUESTS, "order.rejected", {
        "order_id": str(rejected), "message": "insufficient stock",
        "unavailable": [{"product_id": "PRD001", "requested": 3, "available": 1}]}))
    deliver(route_for(SUPPORT_REQUESTS), message(SUPPORT_REQUESTS, "picking.started", {"order_id": str(paid)}))
    # then
    told = {(n.order_id, n.status): n.details for n in CustomerNotification.objects.all()}
    assert told == {
        (rejected, "rejected"): {"message": "insufficient stock",
                                 "unavailable": [{"product_id": "PRD001", "requested": 3, "available": 1}]},
        (paid, "paid"): {},
    }


def test_a_stage_is_recorded_told_and_announced_from_its_payload():
    # given
    order_id = uuid.uuid4()
    # when
    deliver(route_for(DELIVERY_UPDATES), message(DELIVERY_UPDATES, "shipment.status_changed", status_changed(order_id)))
    # then
    assert TrackingRecord.objects.get(shipment_id="SHP-H1").status == "picked_up"
    [notified] = OutboxMessage.objects.filter(type="customer.notified", correlation_id=str(order_id))
    assert (notified.queue, notified.payload["status"], notified.payload["shipment_id"]) == (
        "customer_notifications", "picked_up", "SHP-H1")
    assert notified.payload["notification_id"] == CustomerNotification.objects.get(order_id=order_id).pk


@pytest.mark.parametrize(("queue", "message_type", "payload"), [
    (SUPPORT_REQUESTS, "order.placed", order_placed(uuid.UUID(int=1), recipient=None)),
    (SUPPORT_REQUESTS, "order.placed", order_placed(uuid.UUID(int=1), recipient="")),
    (SUPPORT_REQUESTS, "order.placed", {**order_placed(uuid.UUID(int=1)), "order_id": "not-a-uuid"}),
    (SUPPORT_REQUESTS, "order.cancelled", {"message": "no order id"}),
    (SUPPORT_REQUESTS, "order.payment_failed", {"order_id": "42"}),
    (DELIVERY_UPDATES, "shipment.status_changed", status_changed(uuid.UUID(int=1), status="lost_at_sea")),
    (DELIVERY_UPDATES, "shipment.status_changed", status_changed(uuid.UUID(int=1), timestamp=None)),
    (DELIVERY_UPDATES, "shipment.status_changed", status_changed(uuid.UUID(int=1), message="x" * 301)),
])
def test_a_payload_that_breaks_its_contract_is_refused_for_parking_and_changes_nothing(queue, message_type, payload):
    # given
    bad = message(queue, message_type, payload)
    # when / then: InvalidMessage, which the worker parks as a dead letter
    with pytest.raises(InvalidMessage):
        deliver(route_for(queue), bad)
    assert not CustomerContact.objects.exists()
    assert not TrackingRecord.objects.exists()
    assert not CustomerNotification.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not ProcessedMessage.objects.filter(message_id=bad.message_id).exists()

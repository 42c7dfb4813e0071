"""A worker's batch of shipment stages recorded together: set-based, each once, each the cause of
its own message to the shop, the rows locked in one statement in key order."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from messaging.consumer import HANDLED, deliver_together
from messaging.envelope import Message
from messaging.models import OutboxMessage
from messaging.registry import route_for
from messaging.topology import DELIVERY_UPDATES
from support.models import CustomerNotification, TrackingEntry, TrackingRecord
from support.services import customer_contact_record

pytestmark = pytest.mark.django_db(transaction=True)


def stage(order_id: uuid.UUID, shipment_id: str, status: str) -> Message:
    payload = {"order_id": str(order_id), "shipment_id": shipment_id, "status": status, "message": status,
               "vehicle_id": "VEH001", "timestamp": timezone.now().isoformat()}
    return Message(queue=DELIVERY_UPDATES, message_id=str(uuid.uuid4()), type="shipment.status_changed",
                   correlation_id=str(order_id), causation_id="", payload=payload, producer="transport")


def test_stages_of_several_shipments_handled_together_are_each_recorded_once_and_told_by_their_own_cause():
    # given: two orders with contacts; their stages arrive together, one repeated, one out of order
    a, b = uuid.uuid4(), uuid.uuid4()
    for order_id in (a, b):
        customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    messages = [stage(a, "SHP-A", "vehicle_assigned"), stage(b, "SHP-B", "vehicle_assigned"),
                stage(a, "SHP-A", "picked_up"), stage(b, "SHP-B", "in_transit"), stage(b, "SHP-B", "picked_up")]
    messages.append(stage(a, "SHP-A", "picked_up"))  # the same stage again, another message
    # when
    with CaptureQueriesContext(connection) as statements:
        outcomes = deliver_together(route_for(DELIVERY_UPDATES), messages)
    # then
    assert outcomes == [HANDLED] * 6
    assert dict(TrackingRecord.objects.values_list("shipment_id", "status")) == {
        "SHP-A": "picked_up", "SHP-B": "in_transit"}
    assert sorted(TrackingEntry.objects.values_list("record__shipment_id", "status")) == [
        ("SHP-A", "picked_up"), ("SHP-A", "vehicle_assigned"),
        ("SHP-B", "in_transit"), ("SHP-B", "picked_up"), ("SHP-B", "vehicle_assigned")]
    assert sorted(CustomerNotification.objects.exclude(status="received").values_list("order_id", "status")) == sorted(
        [(a, "picked_up"), (b, "picked_up")])  # the stages mailed
    told = list(OutboxMessage.objects.filter(type="customer.notified").order_by("id")
                .values_list("causation_id", flat=True))
    assert told == [m.message_id for m in messages[:5]]  # each stage told once, by its own message
    # (the mail sender after the commit takes its own: FOR UPDATE SKIP LOCKED)
    locks = [s["sql"] for s in statements.captured_queries
             if s["sql"].endswith("FOR UPDATE") or s["sql"].endswith('FOR UPDATE OF "support_trackingrecord"')]
    assert len(locks) == 2  # the records in one statement, the contacts in another
    assert all('ORDER BY' in sql and '"id" ASC' in sql for sql in locks)

import uuid

import pytest

from messaging.models import OutboxMessage
from transport.models import Shipment, TrackingEvent, Vehicle
from transport.services import shipment_advance, shipment_create

pytestmark = pytest.mark.django_db

LIFECYCLE = ["picked_up", "in_transit", "out_for_delivery", "delivered"]


def create():
    return shipment_create(order_id=uuid.uuid4(), recipient="Mari Maasikas",
                           shipping_address={"street": "Rüütli 1", "city": "Tartu"}, shipping_method="standard")


def deliver(shipment):
    for stage in LIFECYCLE:
        shipment_advance(shipment_id=shipment.id, to_status=stage)


def test_shipment_id_is_random_and_not_the_order_id(catalogue):
    a, b = create(), create()
    assert a.id != b.id
    assert str(a.order_id) not in a.id
    assert a.id.startswith("SHP-") and len(a.id) == 24


def test_fourth_shipment_waits_for_a_vehicle_and_gets_the_first_one_released(catalogue):
    # given: three vehicles, four shipments
    first, second, third, fourth = create(), create(), create(), create()
    assert [s.status for s in (first, second, third)] == ["vehicle_assigned"] * 3
    assert fourth.status == "awaiting_vehicle" and fourth.vehicle is None
    # when
    deliver(second)
    # then
    fourth.refresh_from_db()
    second.refresh_from_db()
    assert second.status == "delivered"
    assert fourth.status == "vehicle_assigned"
    assert fourth.vehicle_id == second.vehicle_id
    assert Vehicle.objects.get(pk=second.vehicle_id).status == "busy"


def test_delivery_frees_the_vehicle_when_nobody_waits(catalogue):
    shipment = create()
    deliver(shipment)
    shipment.refresh_from_db()
    assert Vehicle.objects.get(pk=shipment.vehicle_id).status == "available"
    assert list(shipment.events.values_list("status", flat=True)) == ["vehicle_assigned", *LIFECYCLE]
    updates = OutboxMessage.objects.filter(type="shipment.status_changed", correlation_id=str(shipment.order_id))
    assert [u.payload["status"] for u in updates] == ["vehicle_assigned", *LIFECYCLE]


def test_repeated_or_out_of_order_steps_change_nothing(catalogue):
    # given
    shipment = create()
    shipment_advance(shipment_id=shipment.id, to_status="picked_up")
    # when: the same step again, and a step that skips one
    shipment_advance(shipment_id=shipment.id, to_status="picked_up")
    shipment_advance(shipment_id=shipment.id, to_status="out_for_delivery")
    # then
    shipment.refresh_from_db()
    assert shipment.status == "picked_up"
    assert TrackingEvent.objects.filter(shipment=shipment).count() == 2


def test_a_repeated_shipping_order_creates_one_shipment(catalogue):
    order_id = uuid.uuid4()
    kwargs = dict(order_id=order_id, recipient="A", shipping_address={"street": "x"}, shipping_method="standard")
    assert shipment_create(**kwargs).id == shipment_create(**kwargs).id
    assert Shipment.objects.filter(order_id=order_id).count() == 1

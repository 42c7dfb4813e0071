"""Shipments: a vehicle for each, a place in line when none is free, and what transport announces."""

import uuid
from datetime import datetime

import pytest

from contracts.stages import NEXT_STAGE as CONTRACT_NEXT_STAGE
from contracts.stages import SHIPMENT_STAGES
from messaging.envelope import InvalidMessage, Message
from messaging.models import OutboxMessage
from messaging.topology import SHIPPING_ORDERS
from tests.handling import handled
from transport.models import NEXT_STAGE, Shipment, ShipmentStatus, Vehicle
from transport.services import shipment_advance, shipment_create, vehicles_dispatch

pytestmark = pytest.mark.django_db

LIFECYCLE = ["picked_up", "in_transit", "out_for_delivery", "delivered"]


def create() -> Shipment:
    return shipment_create(order_id=uuid.uuid4(), recipient="Mari Maasikas",
                           shipping_address={"street": "Rüütli 1", "city": "Tartu"}, shipping_method="standard")


def deliver(shipment: Shipment) -> None:
    for stage in LIFECYCLE:
        shipment_advance(shipment_id=shipment.id, to_status=stage)


def announcements(shipment: Shipment) -> list[tuple[str, str, str, dict]]:
    rows = OutboxMessage.objects.filter(correlation_id=str(shipment.order_id)).order_by("id")
    return [(row.exchange, row.queue, row.type, row.payload) for row in rows]


def fleet() -> dict[str, str]:
    return dict(Vehicle.objects.values_list("code", "status"))


def test_the_model_status_is_the_contract_stage_in_the_same_order():
    assert ShipmentStatus.values == [stage.value for stage in SHIPMENT_STAGES]
    assert NEXT_STAGE == CONTRACT_NEXT_STAGE
    assert all(isinstance(stage, ShipmentStatus) for pair in NEXT_STAGE.items() for stage in pair)


def test_shipment_id_is_random_and_not_the_order_id(catalogue):
    a, b = create(), create()
    assert a.id != b.id
    assert str(a.order_id) not in a.id
    assert a.id.startswith("SHP-")
    assert len(a.id) == 24


def test_a_shipment_gets_the_first_free_vehicle_and_says_so(catalogue):
    # when
    shipment = create()
    # then
    assert (shipment.status, shipment.vehicle.code) == ("vehicle_assigned", "VEH001")
    assert fleet() == {"VEH001": "busy", "VEH002": "available", "VEH003": "available"}
    [event] = shipment.events.all()
    assert (event.status, event.message, event.vehicle_code) == (
        "vehicle_assigned", "Vehicle VEH001 assigned", "VEH001")
    [(exchange, queue, type, payload)] = announcements(shipment)
    assert (exchange, queue, type) == ("logistics.events", "shipment.status_changed", "shipment.status_changed")
    assert datetime.fromisoformat(payload.pop("timestamp")) == event.timestamp
    assert payload == {"order_id": str(shipment.order_id), "shipment_id": shipment.id, "status": "vehicle_assigned",
                       "message": "Vehicle VEH001 assigned", "vehicle_id": "VEH001"}


def test_fourth_shipment_waits_for_a_vehicle_and_gets_the_first_one_released(catalogue):
    # given: three vehicles, four shipments
    first, second, third, fourth = create(), create(), create(), create()
    assert [s.status for s in (first, second, third)] == ["vehicle_assigned"] * 3
    assert (fourth.status, fourth.vehicle) == ("awaiting_vehicle", None)
    assert [p["vehicle_id"] for *_, p in announcements(fourth)] == [None]
    # when
    deliver(second)
    # then
    fourth.refresh_from_db()
    second.refresh_from_db()
    assert second.status == "delivered"
    assert (fourth.status, fourth.vehicle_id) == ("vehicle_assigned", second.vehicle_id)
    assert Vehicle.objects.get(pk=second.vehicle_id).status == "busy"
    assert [(p["status"], p["message"]) for *_, p in announcements(fourth)] == [
        ("awaiting_vehicle", "Shipment registered; waiting for a free vehicle"),
        ("vehicle_assigned", "Vehicle VEH002 assigned"),
    ]


def test_delivery_frees_the_vehicle_where_it_delivered_when_nobody_waits(catalogue):
    # given
    shipment = create()
    # when
    deliver(shipment)
    # then
    shipment.refresh_from_db()
    vehicle = Vehicle.objects.get(pk=shipment.vehicle_id)
    assert (vehicle.status, vehicle.location) == ("available", "Tartu")
    assert shipment.delivered_at is not None
    assert list(shipment.events.values_list("status", "message")) == [
        ("vehicle_assigned", "Vehicle VEH001 assigned"),
        ("picked_up", "Picked up from the warehouse by VEH001"),
        ("in_transit", "In transit to Tartu"),
        ("out_for_delivery", "Out for delivery in Tartu"),
        ("delivered", "Delivered"),
    ]
    assert [p["status"] for *_, p in announcements(shipment)] == ["vehicle_assigned", *LIFECYCLE]


def test_dispatch_gives_each_free_vehicle_to_the_longest_waiting(catalogue):
    # given: two vehicles in maintenance, three shipments: one rides, two wait
    Vehicle.objects.filter(code__in=["VEH002", "VEH003"]).update(status="maintenance")
    _riding, first_waiting, second_waiting = create(), create(), create()
    Vehicle.objects.filter(code__in=["VEH002", "VEH003"]).update(status="available")
    # when
    assigned = vehicles_dispatch()
    again = vehicles_dispatch()
    # then
    assert (assigned, again) == (2, 0)
    first_waiting.refresh_from_db()
    second_waiting.refresh_from_db()
    assert (first_waiting.vehicle.code, second_waiting.vehicle.code) == ("VEH002", "VEH003")
    assert fleet() == {"VEH001": "busy", "VEH002": "busy", "VEH003": "busy"}
    assert [p["status"] for *_, p in announcements(second_waiting)] == ["awaiting_vehicle", "vehicle_assigned"]


def test_a_repeated_shipping_order_creates_one_shipment(catalogue):
    # given
    order_id = uuid.uuid4()
    kwargs = dict(order_id=order_id, recipient="A", shipping_address={"street": "x"}, shipping_method="standard")
    first = shipment_create(**kwargs)
    # when
    again = shipment_create(**kwargs)
    # then
    assert (again.id, again.status, again.vehicle_id) == (first.id, "vehicle_assigned", first.vehicle_id)
    assert Shipment.objects.filter(order_id=order_id).count() == 1
    assert fleet() == {"VEH001": "busy", "VEH002": "available", "VEH003": "available"}
    assert [type for _, _, type, _ in announcements(first)] == ["shipment.status_changed"]


# --- the handler ---------------------------------------------------------------------------
def shipment_requested(payload: dict) -> Message:
    return Message(queue=SHIPPING_ORDERS, message_id=str(uuid.uuid4()), type="shipment.requested",
                   correlation_id=str(payload.get("order_id", "")), causation_id="", payload=payload,
                   producer="warehouse")


def test_a_shipment_request_makes_a_shipment(catalogue):
    # given: the warehouse's message, with more than transport keeps
    order_id = uuid.uuid4()
    message = shipment_requested({
        "order_id": str(order_id), "recipient": "Mari Maasikas", "shipping_method": "standard",
        "shipping_address": {"street": "Rüütli 1", "city": "Tartu"},
        "items": [{"product_id": "PRD001", "quantity": 1}], "picked_at": "2025-05-01T12:00:00Z",
    })
    # when
    handled(message)
    handled(message)  # and a redelivery
    # then
    shipment = Shipment.objects.get(order_id=order_id)
    assert (shipment.recipient, shipment.shipping_address, shipment.shipping_method, shipment.status) == (
        "Mari Maasikas", {"street": "Rüütli 1", "city": "Tartu"}, "standard", "vehicle_assigned")
    assert shipment.events.count() == 1


def test_a_broken_shipment_request_is_a_dead_letter(catalogue):
    # when
    with pytest.raises(InvalidMessage) as raised:
        handled(shipment_requested({"order_id": str(uuid.uuid4()), "recipient": "A"}))
    # then
    assert str(raised.value) == ("invalid shipment.requested payload: {'shipping_address': 'Field required', "
                                 "'shipping_method': 'Field required'}")
    assert not Shipment.objects.exists()
    assert not OutboxMessage.objects.exists()

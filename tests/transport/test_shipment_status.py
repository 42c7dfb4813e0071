"""A shipment moves forward only, one stage at a time, each stage recorded and announced once:
a late, repeated or out-of-order stage, or one for a shipment still awaiting a vehicle,
changes nothing. Exact status, tracking events and outbox rows."""

import uuid

import pytest

from messaging.models import OutboxMessage
from transport.models import Shipment, TrackingEvent, Vehicle
from transport.services import shipment_advance, shipment_create

pytestmark = pytest.mark.django_db

LIFECYCLE = ["picked_up", "in_transit", "out_for_delivery", "delivered"]


def create() -> Shipment:
    return shipment_create(order_id=uuid.uuid4(), recipient="Mari Maasikas",
                           shipping_address={"street": "Rüütli 1", "city": "Tartu"}, shipping_method="standard")


def advance(shipment: Shipment, stages: list[str]) -> None:
    for stage in stages:
        shipment_advance(shipment_id=shipment.id, to_status=stage)


def state(shipment: Shipment) -> tuple[str, str | None]:
    """The shipment's status and its vehicle's code."""
    fresh = Shipment.objects.select_related("vehicle").get(pk=shipment.pk)
    return fresh.status, fresh.vehicle.code if fresh.vehicle else None


def events(shipment: Shipment) -> list[tuple[str, str, str]]:
    return list(TrackingEvent.objects.filter(shipment=shipment).values_list("status", "message", "vehicle_code"))


def outbox(shipment: Shipment) -> list[tuple[str, str, str, str, str | None]]:
    """Every message written about the shipment's order: (type, shipment, status, message, vehicle)."""
    rows = OutboxMessage.objects.filter(correlation_id=str(shipment.order_id)).order_by("id")
    return [(r.type, r.payload["shipment_id"], r.payload["status"], r.payload["message"], r.payload["vehicle_id"])
            for r in rows]


def fleet() -> dict[str, str]:
    return dict(Vehicle.objects.values_list("code", "status"))


def vehicle_events(shipment: Shipment, stages: list[str]) -> list[tuple[str, str, str]]:
    messages = {
        "vehicle_assigned": "Vehicle VEH001 assigned",
        "picked_up": "Picked up from the warehouse by VEH001",
        "in_transit": "In transit to Tartu",
        "out_for_delivery": "Out for delivery in Tartu",
        "delivered": "Delivered",
    }
    return [(stage, messages[stage], "VEH001") for stage in stages]


def announced(shipment: Shipment, stages: list[str]) -> list[tuple[str, str, str, str, str]]:
    return [("shipment.status_changed", shipment.id, status, message, code)
            for status, message, code in vehicle_events(shipment, stages)]


def test_a_repeated_stage_changes_nothing(catalogue):
    # given
    shipment = create()
    shipment_advance(shipment_id=shipment.id, to_status="picked_up")
    # when
    again = shipment_advance(shipment_id=shipment.id, to_status="picked_up")
    # then
    assert again.status == "picked_up"
    assert state(shipment) == ("picked_up", "VEH001")
    assert events(shipment) == vehicle_events(shipment, ["vehicle_assigned", "picked_up"])
    assert outbox(shipment) == announced(shipment, ["vehicle_assigned", "picked_up"])


@pytest.mark.parametrize("late", ["picked_up", "in_transit"])
def test_a_late_stage_does_not_move_the_shipment_back(catalogue, late):
    # given: out for delivery
    shipment = create()
    advance(shipment, ["picked_up", "in_transit", "out_for_delivery"])
    # when: an earlier stage arrives late
    answer = shipment_advance(shipment_id=shipment.id, to_status=late)
    # then
    assert answer.status == "out_for_delivery"
    assert state(shipment) == ("out_for_delivery", "VEH001")
    assert events(shipment) == vehicle_events(shipment, ["vehicle_assigned", *LIFECYCLE[:3]])
    assert outbox(shipment) == announced(shipment, ["vehicle_assigned", *LIFECYCLE[:3]])


@pytest.mark.parametrize("stage", ["in_transit", "out_for_delivery", "delivered"])
def test_a_stage_out_of_order_changes_nothing(catalogue, stage):
    # given: a vehicle assigned, not picked up yet
    shipment = create()
    # when: a stage that skips one or more
    answer = shipment_advance(shipment_id=shipment.id, to_status=stage)
    # then: nothing recorded, the vehicle still on it
    assert answer.status == "vehicle_assigned"
    assert state(shipment) == ("vehicle_assigned", "VEH001")
    assert events(shipment) == vehicle_events(shipment, ["vehicle_assigned"])
    assert outbox(shipment) == announced(shipment, ["vehicle_assigned"])
    assert fleet() == {"VEH001": "busy", "VEH002": "available", "VEH003": "available"}


@pytest.mark.parametrize("stage", ["vehicle_assigned", "picked_up", "delivered", "awaiting_vehicle"])
def test_no_stage_for_a_shipment_awaiting_a_vehicle(catalogue, stage):
    # given: three vehicles busy, so the fourth shipment waits
    create(), create(), create()
    waiting = create()
    # when
    answer = shipment_advance(shipment_id=waiting.id, to_status=stage)
    # then
    assert answer.status == "awaiting_vehicle"
    assert state(waiting) == ("awaiting_vehicle", None)
    assert events(waiting) == [("awaiting_vehicle", "Shipment registered; waiting for a free vehicle", "")]
    assert outbox(waiting) == [("shipment.status_changed", waiting.id, "awaiting_vehicle",
                                "Shipment registered; waiting for a free vehicle", None)]
    assert fleet() == {"VEH001": "busy", "VEH002": "busy", "VEH003": "busy"}


def test_a_repeated_delivery_frees_the_vehicle_once(catalogue):
    # given: three vehicles busy, two shipments waiting; the first shipment delivered, so its
    # vehicle went to the first waiting one
    first, _, _ = create(), create(), create()
    first_waiting, second_waiting = create(), create()
    advance(first, LIFECYCLE)
    # when: the delivery again
    answer = shipment_advance(shipment_id=first.id, to_status="delivered")
    # then: the second waiting shipment still waits; the vehicle stays with the first
    delivered_at = Shipment.objects.get(pk=first.pk).delivered_at
    assert (answer.status, answer.delivered_at) == ("delivered", delivered_at)
    assert state(first) == ("delivered", "VEH001")
    assert state(first_waiting) == ("vehicle_assigned", "VEH001")
    assert state(second_waiting) == ("awaiting_vehicle", None)
    assert events(first) == vehicle_events(first, ["vehicle_assigned", *LIFECYCLE])
    assert outbox(first) == announced(first, ["vehicle_assigned", *LIFECYCLE])
    assert [status for _, _, status, _, _ in outbox(first_waiting)] == ["awaiting_vehicle", "vehicle_assigned"]
    assert [status for _, _, status, _, _ in outbox(second_waiting)] == ["awaiting_vehicle"]
    assert fleet() == {"VEH001": "busy", "VEH002": "busy", "VEH003": "busy"}


def test_a_stage_after_delivery_changes_nothing(catalogue):
    # given: delivered, nobody waiting: the vehicle is free
    shipment = create()
    advance(shipment, LIFECYCLE)
    delivered_at = Shipment.objects.get(pk=shipment.pk).delivered_at
    # when: every stage again
    advance(shipment, LIFECYCLE)
    # then
    assert state(shipment) == ("delivered", "VEH001")
    assert Shipment.objects.get(pk=shipment.pk).delivered_at == delivered_at
    assert events(shipment) == vehicle_events(shipment, ["vehicle_assigned", *LIFECYCLE])
    assert outbox(shipment) == announced(shipment, ["vehicle_assigned", *LIFECYCLE])
    assert fleet() == {"VEH001": "available", "VEH002": "available", "VEH003": "available"}


def test_an_unknown_shipment_is_none(catalogue):
    assert shipment_advance(shipment_id="SHP-00000000000000000000", to_status="picked_up") is None
    assert shipment_advance(shipment_id="SHP-00000000000000000000", to_status="delivered") is None
    assert not OutboxMessage.objects.exists()

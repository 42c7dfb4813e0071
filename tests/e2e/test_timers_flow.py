"""Timers on the real broker and processes: cancelled with the order, harmless when stale."""

import copy
import io
from collections import Counter

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from payments.models import Payment
from shop.models import Order
from simulation.demo_data import SEED_ORDER
from tests.harness import System, wait_until
from transport.models import NEXT_STAGE, Shipment, TrackingEvent
from warehouse.models import Reservation
from warehouse.services import picking_complete

pytestmark = pytest.mark.e2e

LIFECYCLE = ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"]


def one_mouse() -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD004", "quantity": 1}]
    return body


def unsent_timers(order_id: str) -> Counter:
    return Counter(OutboxMessage.objects.filter(correlation_id=order_id, due_at__isnull=False,
                                                published_at__isnull=True).values_list("type", flat=True))


def test_cancelling_an_order_cancels_its_pending_timers(transactional_db, broker, catalogue, customer_client):
    # given: a slow payment provider (SIM_TIME_SCALE=40: its answer takes 20-60 s, the payment
    # deadline 20 minutes), so the order waits, confirmed, with both timers pending
    system = System(env={"SIM_TIME_SCALE": "40"})
    system.start_all()
    try:
        order_id = customer_client.post("/api/orders/", one_mouse(), format="json").json()["order_id"]
        wait_until(lambda: unsent_timers(order_id) == {"payment.charge_due": 1, "payment.deadline_due": 1},
                   timeout=30, what="the charge and the deadline timers set")
        assert Order.objects.get(pk=order_id).status == "confirmed"
        # when: the customer cancels
        assert customer_client.post(f"/api/orders/{order_id}/cancel/").status_code == 200
        # then: the deadline goes with the cancellation, the charge with the payment's voiding
        wait_until(lambda: Payment.objects.filter(order_id=order_id, status="voided").exists(), timeout=30,
                   what="payment voided")
        wait_until(lambda: Reservation.objects.filter(order_id=order_id, status="released").exists(), timeout=30,
                   what="stock released")
        assert unsent_timers(order_id) == Counter()
        assert not OutboxMessage.objects.filter(correlation_id=order_id, due_at__isnull=False).exists()
        assert Order.objects.get(pk=order_id).status == "cancelled"
        assert not OutboxMessage.objects.filter(correlation_id=order_id, type="payment.captured").exists()
    except AssertionError:
        print(system.log_tail())
        raise
    finally:
        system.stop_all()


def test_people_overtake_the_simulated_actors_and_their_late_timers_change_nothing(
        transactional_db, broker, catalogue, customer_client):
    # given: the actors slow (SIM_TIME_SCALE=2: picking 4 s, each stage 2-6 s), the whole
    # system running, and (once a vehicle is assigned) that vehicle's driver
    system = System(env={"SIM_TIME_SCALE": "2"})
    system.start_all()
    try:
        order_id = customer_client.post("/api/orders/", one_mouse(), format="json").json()["order_id"]
        # when: warehouse staff finish picking before the simulated picker does
        wait_until(lambda: Reservation.objects.filter(order_id=order_id, status="picking").exists(), timeout=60,
                   what="picking started")
        picking_complete(order_id=order_id)
        # and a driver records every stage as soon as the shipment has a vehicle
        wait_until(lambda: Shipment.objects.filter(order_id=order_id, status="vehicle_assigned").exists(),
                   timeout=30, what="a vehicle assigned")
        shipment = Shipment.objects.select_related("vehicle").get(order_id=order_id)
        out = io.StringIO()  # the driver of the vehicle the shipment got
        call_command("create_driver", "driver-1", "--vehicle", shipment.vehicle.code, stdout=out)
        driver_api = APIClient()
        driver_api.credentials(HTTP_AUTHORIZATION=f"Token {out.getvalue().splitlines()[-1]}")
        for stage in LIFECYCLE[1:]:
            answer = driver_api.post(f"/api/shipments/{shipment.id}/stage/", {"status": stage}, format="json")
            assert answer.status_code == 200, answer.content
        wait_until(lambda: Order.objects.get(pk=order_id).status == "delivered", timeout=30, what="delivered")
        # then: the actors' timers still come, late, and are handled (once each) without effect
        wait_until(lambda: ProcessedMessage.objects.filter(
            consumer="simulation.actors", message_id__in=[str(m) for m in OutboxMessage.objects.filter(
                correlation_id=order_id, type="sim.picking_done").values_list("message_id", flat=True)]).exists(),
            timeout=30, what="the simulated picker's timer handled")
        wait_until(lambda: not unsent_timers(order_id) and not OutboxMessage.objects.filter(
            correlation_id=order_id, published_at__isnull=True).exists(), timeout=30, what="every timer sent")
        wait_until(lambda: ProcessedMessage.objects.count() >= OutboxMessage.objects.count(), timeout=30,
                   what="every message handled")
    except AssertionError:
        print(system.log_tail())
        raise
    finally:
        system.stop_all()
    assert OutboxMessage.objects.filter(correlation_id=order_id, type="shipment.requested").count() == 1
    assert list(TrackingEvent.objects.filter(shipment_id=shipment.id).values_list("status", flat=True)) == LIFECYCLE
    assert OutboxMessage.objects.filter(correlation_id=order_id, type="shipment.status_changed").count() == 5
    assert list(Order.objects.get(pk=order_id).history.values_list("status", flat=True)) == [
        "new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered"]
    # the picker's timer and every driver timer set before a person acted arrived and did nothing
    stale = OutboxMessage.objects.filter(correlation_id=order_id, type__in=["sim.picking_done", "sim.stage_reached"])
    assert stale.filter(type="sim.picking_done").count() == 1
    assert stale.count() >= 2
    assert all(row.payload.get("status") in {None, *NEXT_STAGE.values()} for row in stale)
    assert DeadLetter.objects.count() == 0

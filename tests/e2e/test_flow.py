"""The seed's flow from POST /api/orders/ to delivered, through the real RabbitMQ and processes."""

import copy
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db.models import Count

from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from payments.models import Payment
from shop.models import Order
from simulation.demo_data import SEED_ORDER
from support.models import CustomerNotification
from tests.harness import System, wait_until
from transport.models import Shipment, TrackingEvent, Vehicle
from warehouse.models import StockItem

pytestmark = pytest.mark.e2e

LIFECYCLE = ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"]


def order_statuses(order_ids) -> dict[str, str]:
    return {str(k): v for k, v in Order.objects.filter(pk__in=order_ids).values_list("id", "status")}


def test_seed_order_travels_from_post_to_delivered(system, catalogue, customer_client):
    # given: the whole system; timed steps short but real (picking 0.1 s, stages 0.05-0.15 s),
    # each one a timer: a message due later, handled by a queue worker like any other
    system.env["SIM_TIME_SCALE"] = "0.05"
    system.start_all()
    # when
    started = time.monotonic()
    response = customer_client.post("/api/orders/", SEED_ORDER, format="json")
    assert response.status_code == 201
    order_id = response.json()["order_id"]
    try:
        wait_until(lambda: Order.objects.get(pk=order_id).status == "delivered", timeout=90, what="delivered")
    except AssertionError:
        print(system.log_tail())
        raise
    print(f"seed order POST -> delivered in {time.monotonic() - started:.2f}s at SIM_TIME_SCALE=0.05")
    # then: every stage, in order
    order = Order.objects.get(pk=order_id)
    assert list(order.history.values_list("status", flat=True)) == [
        "new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered"]
    detail = customer_client.get(f"/api/orders/{order_id}/").json()
    assert detail["warehouse_confirmation"]["status"] == "confirmed"
    assert detail["payment"]["status"] == "captured"
    assert Payment.objects.get(order_id=order_id).amount == Decimal("1539.97")
    assert detail["delivery_status"]["status"] == "delivered"
    shipment_id = detail["shipment_id"]
    assert shipment_id
    assert shipment_id.startswith("SHP-")
    # the tracking events, oldest first, publicly by shipment id
    tracking = customer_client.get(f"/api/tracking/{shipment_id}/").json()
    assert [e["status"] for e in tracking["events"]] == LIFECYCLE
    assert list(TrackingEvent.objects.filter(shipment_id=shipment_id).values_list("status", flat=True)) == LIFECYCLE
    # stock went down by exactly the order, the vehicle is free again
    assert dict(StockItem.objects.values_list("sku", "quantity_on_hand")) == {
        "PRD001": 9, "PRD002": 15, "PRD003": 18, "PRD004": 25}
    shipment = Shipment.objects.get(pk=shipment_id)
    assert shipment.vehicle.status == "available"
    # every hop was a message on the seed's queues, each handled exactly once
    hops = Counter(OutboxMessage.objects.filter(correlation_id=order_id).values_list("exchange", "queue", "type"))
    assert hops == {
        ("logistics.events", "order.placed", "order.placed"): 1,  # to the warehouse and to customer service
        ("logistics.events", "order.confirmed", "order.confirmed"): 1,  # to the shop
        ("logistics", "payment_requests", "payment.requested"): 1,  # the shop asks payments, with the amount
        ("logistics", "payment_requests", "payment.charge_due"): 1,  # the provider's answer (a timer)
        ("logistics", "payment_results", "payment.captured"): 1,
        ("logistics", "fulfilment_requests", "order.paid"): 1,
        ("logistics.events", "picking.started", "picking.started"): 1,  # to the simulated picker and support
        ("logistics", "sim_actors", "sim.picking_done"): 1,  # its timer
        ("logistics", "shipping_orders", "shipment.requested"): 1,
        # each stage to customer service and to the simulated driver, who sets a timer for the next
        ("logistics.events", "shipment.status_changed", "shipment.status_changed"): 5,
        ("logistics", "sim_actors", "sim.stage_reached"): 4,
        ("logistics", "customer_notifications", "customer.notified"): 5,
    }
    # the payment deadline timer was cancelled when the payment was captured: never sent
    assert not OutboxMessage.objects.filter(correlation_id=order_id, type="payment.deadline_due").exists()
    wait_until(lambda: ProcessedMessage.objects.count() == 30, timeout=10, what="last acks")
    assert OutboxMessage.objects.filter(published_at__isnull=True).count() == 0
    handled = Counter(ProcessedMessage.objects.values_list("consumer", flat=True))
    assert handled == {
        "warehouse.new_orders": 1, "support.support_requests": 2, "shop.order_confirmations": 1,
        "payments.payment_requests": 2, "shop.payment_results": 1, "warehouse.fulfilment_requests": 1,
        "transport.shipping_orders": 1, "support.delivery_updates": 5, "shop.customer_notifications": 5,
        "simulation.actors": 1 + 1 + 5 + 4,  # picking.started, picking done, 5 stages, 4 stage timers
    }
    # every timer went out when due, not before
    timers = OutboxMessage.objects.filter(correlation_id=order_id, due_at__isnull=False)
    assert timers.count() == 6
    assert all(t.published_at >= t.due_at for t in timers)
    # received, paid, on its way, out for delivery, delivered: each mailed once, right after its commit
    told = CustomerNotification.objects.filter(order_id=order_id)
    assert sorted(told.values_list("status", flat=True)) == [
        "delivered", "out_for_delivery", "paid", "picked_up", "received"]
    assert all(n.sent_at is not None and (n.sent_at - n.created_at).total_seconds() < 5 for n in told)
    assert DeadLetter.objects.count() == 0


def test_five_orders_three_vehicles_all_delivered(transactional_db, broker, catalogue, make_customer):
    # given: stages slow enough (SIM_TIME_SCALE=0.4: picking 0.8 s, each stage 0.4-1.2 s) that
    # five shipments overlap and two of them must wait for a vehicle
    system = System(env={"SIM_TIME_SCALE": "0.4"})
    system.start_all()
    _, client = make_customer()
    try:
        # when
        order_ids = []
        for _ in range(5):
            body = copy.deepcopy(SEED_ORDER)
            body["items"] = [{"product_id": "PRD004", "quantity": 1}]
            response = client.post("/api/orders/", body, format="json")
            assert response.status_code == 201
            order_ids.append(response.json()["order_id"])
        try:
            wait_until(lambda: set(order_statuses(order_ids).values()) == {"delivered"}, timeout=120,
                       what="five deliveries")
        except AssertionError:
            print(order_statuses(order_ids))
            print(system.log_tail())
            raise
        # then
        waited = Shipment.objects.filter(events__status="awaiting_vehicle").count()
        per_vehicle = dict(Shipment.objects.values_list("vehicle__code").annotate(n=Count("id")))
        print(f"5 orders delivered; {waited} waited for a vehicle; shipments per vehicle: {per_vehicle}")
        assert Shipment.objects.filter(status="delivered").count() == 5
        assert waited >= 2
        assert sum(per_vehicle.values()) == 5
        assert set(per_vehicle) <= {"VEH001", "VEH002", "VEH003"}
        assert list(Vehicle.objects.values_list("status", flat=True)) == ["available"] * 3
        assert StockItem.objects.get(sku="PRD004").quantity_on_hand == 20
    finally:
        system.stop_all()

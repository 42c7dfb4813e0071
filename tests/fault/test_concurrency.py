"""Competing workers: two warehouse workers for a small stock, two transport workers and two
workers of the simulated drivers (their timers) for three vehicles."""

import itertools
import time
from collections import defaultdict
from typing import Any

import pytest
from django.core.management import call_command

from messaging.models import DeadLetter, OutboxMessage
from tests.fault.tools import (
    Supervisor,
    effects,
    log_count,
    messages_settled,
    place_order,
    processed_matches_outbox,
    queue_depths,
    reserved_quantities,
    statuses,
    stock,
    vehicles_all_available,
)
from transport.models import Shipment, TrackingEvent
from warehouse.models import Reservation, StockItem

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

STOCK = 7
ORDERS = 40


def vehicle_intervals() -> dict[str, list[tuple]]:
    """{vehicle code: [(vehicle_assigned at, delivered at, shipment id), ...] sorted}."""
    events: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    vehicle_of = {}
    for shipment_id, status, code, at in TrackingEvent.objects.values_list(
            "shipment_id", "status", "vehicle_code", "timestamp"):
        events[shipment_id][status] = at
        if status == "vehicle_assigned":
            vehicle_of[shipment_id] = code
    intervals = defaultdict(list)
    for shipment_id, code in vehicle_of.items():
        intervals[code].append((events[shipment_id]["vehicle_assigned"], events[shipment_id].get("delivered"),
                                shipment_id))
    return {code: sorted(spans) for code, spans in intervals.items()}


def test_two_warehouse_workers_never_oversell_and_no_vehicle_serves_two_shipments_at_once(
        fault_system, make_customer):
    # given: 7 laptops; stages short but not instant (SIM_TIME_SCALE=0.2: picking 0.4 s, each
    # stage 0.2-0.6 s) so that shipments overlap and compete for the three vehicles
    call_command("load_demo_data", verbosity=0)
    StockItem.objects.filter(sku="PRD001").update(quantity_on_hand=STOCK)
    system = fault_system
    system.env["SIM_TIME_SCALE"] = "0.2"
    system.start("new_orders", count=2, args=["--prefetch", "1"])
    system.start("order_confirmations")
    system.start("shipping_orders", count=2, args=["--prefetch", "1"])
    system.start("delivery_updates")
    system.start("customer_notifications")
    for name in ("payment_requests", "payment_results", "fulfilment_requests", "support_requests"):
        system.start(name)
    system.start("sim_actors", count=2, args=["--prefetch", "1"])
    supervisor = Supervisor(system, ("relay", "new_orders", "order_confirmations", "shipping_orders",
                                     "delivery_updates", "customer_notifications", "payment_requests",
                                     "payment_results", "fulfilment_requests", "support_requests", "sim_actors"))
    supervisor.wait(lambda: queue_depths(["new_orders"])["new_orders"][1] == 2, timeout=60,
                    what="both warehouse workers listening")
    _, client = make_customer()

    # when: 40 one-laptop orders wait in the outbox; then the relay sends them all at once to
    # the two waiting warehouse workers
    order_ids = [place_order(client, [("PRD001", 1)]) for _ in range(ORDERS)]
    system.start("relay", count=2)  # two relays lease side by side: no row sent twice, timers included
    lowest_stock = STOCK
    started = time.monotonic()
    try:
        deadline = started + 150
        while not (set(statuses(order_ids)) <= {"delivered", "rejected"} and messages_settled()):
            assert time.monotonic() < deadline, f"timed out: {statuses(order_ids)}"
            lowest_stock = min(lowest_stock, StockItem.objects.get(sku="PRD001").quantity_on_hand)
            supervisor.tick()
            time.sleep(0.1)
    except AssertionError:
        print(system.log_tail(30))
        raise
    elapsed = time.monotonic() - started

    # then
    found = effects(order_ids)
    per_worker = [log_count(system, r"type=order\.placed .*outcome=handled", names=(f"new_orders-{i}",))
                  for i in range(2)]
    shipping_per_worker = [
        log_count(system, r"type=shipment\.requested .*outcome=handled", names=(f"shipping_orders-{i}",))
        for i in range(2)]
    intervals = vehicle_intervals()
    overlaps = [
        (code, a[2], b[2]) for code, spans in intervals.items() for a, b in itertools.pairwise(spans)
        if a[1] is None or b[0] < a[1]
    ]
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    print(
        f"\n[concurrency] {ORDERS} one-unit orders for {STOCK} in stock, 2 new_orders workers (prefetch 1) "
        f"handled {per_worker}; 2 shipping_orders workers handled {shipping_per_worker}; "
        f"2 sim_actors workers, 2 relays\n"
        f"  statuses={dict(found.statuses)} stock PRD001 now {stock()['PRD001']} (lowest seen {lowest_stock}) "
        f"reservations={Reservation.objects.count()} reserved units={reserved_quantities()}\n"
        f"  shipments per vehicle={ {c: len(s) for c, s in intervals.items()} } "
        f"waited for a vehicle={found.waited_for_vehicle} vehicle overlaps={len(overlaps)} "
        f"lost={found.lost} doubled={len(found.doubled)} in {elapsed:.1f}s"
    )
    assert supervisor.deaths == {}
    assert found.statuses == {"delivered": STOCK, "rejected": ORDERS - STOCK}
    assert stock()["PRD001"] == 0
    assert lowest_stock >= 0
    assert Reservation.objects.count() == ORDERS
    assert Reservation.objects.filter(status="picked").count() == STOCK
    assert Reservation.objects.filter(status="rejected").count() == ORDERS - STOCK
    assert reserved_quantities() == {"PRD001": STOCK}
    assert found.missing == []
    assert found.doubled == []
    assert sum(per_worker) == ORDERS
    assert min(per_worker) > 0, "both warehouse workers took orders"
    assert Shipment.objects.count() == STOCK
    assert found.waited_for_vehicle >= 1, "shipments did compete for the vehicles"
    assert overlaps == []
    assert sum(len(spans) for spans in intervals.values()) == STOCK
    assert vehicles_all_available()
    assert processed == outbox_rows == exactly_once
    assert OutboxMessage.objects.filter(type="order.rejected").count() == ORDERS - STOCK
    assert DeadLetter.objects.count() == 0

"""Helpers of the fault tests: placing orders, waiting, and counting every effect once."""

from __future__ import annotations

import contextlib
import copy
import json
import random
import re
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, cast

import pika
import requests
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from config.database_url import database_settings
from messaging import broker as broker_mod
from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage
from messaging.registry import route_for
from messaging.topology import EVENT_SUBSCRIPTIONS, EVENTS_EXCHANGE, work_queues
from payments.models import Payment
from shop.models import Order, OrderStatusChange
from shop.services import customer_create
from simulation.demo_data import SEED_ORDER
from support.mails import MAILED_STAGES
from support.models import CustomerNotification, TrackingEntry
from tests.harness import System
from transport.models import Shipment, TrackingEvent, Vehicle
from warehouse.models import Reservation, ReservationLine, StockItem

LIFECYCLE = ("vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered")
CONSUMERS = ("new_orders", "order_confirmations", "payment_requests", "payment_results", "fulfilment_requests",
             "shipping_orders", "delivery_updates", "customer_notifications", "support_requests", "sim_actors")
SKUS = ("PRD001", "PRD002", "PRD003", "PRD004")


@contextlib.contextmanager
def database_at(url: str):
    """This process's default database connection points at ``url`` meanwhile."""
    conn = connections["default"]
    saved = dict(conn.settings_dict)
    parsed = database_settings(url, conn_max_age=0, conn_health_checks=True)
    conn.close()
    conn.settings_dict.update({key: parsed[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    conn.settings_dict["OPTIONS"] = {**saved["OPTIONS"], **parsed["OPTIONS"]}  # target_session_attrs, ...
    try:
        yield
    finally:
        conn.close()
        conn.settings_dict.clear()
        conn.settings_dict.update(saved)


# --- orders -----------------------------------------------------------------------------
def order_body(items: list[tuple[str, int]]) -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": sku, "quantity": quantity} for sku, quantity in items]
    return body


def random_items(rng: random.Random) -> list[tuple[str, int]]:
    skus = rng.sample(SKUS, rng.randint(1, 2))
    return [(sku, rng.randint(1, 3)) for sku in skus]


def place_order(client, items: list[tuple[str, int]]) -> str:
    response = client.post("/api/orders/", order_body(items), format="json")
    assert response.status_code == 201, (response.status_code, response.content[:500])
    return response.json()["order_id"]


def stock() -> dict[str, int]:
    return dict(StockItem.objects.values_list("sku", "quantity_on_hand"))


def stocked(quantity: int = 1000) -> dict[str, int]:
    """The demo catalogue with ``quantity`` of every product (plenty for a fault test's orders),
    on the database this process uses now; returns the stock."""
    call_command("load_demo_data", stock=quantity, verbosity=0)
    return stock()


def customer_tokens(prefix: str, count: int) -> list[str]:
    """API tokens of ``count`` new customers (``<prefix>-0``, ...): a customer may place 120
    orders a minute (API_THROTTLE_ORDERS), so tests that place more spread them."""
    return [customer_create(username=f"{prefix}-{n}", email=f"{prefix}-{n}@example.com")[1] for n in range(count)]


def answers(url: str, *, timeout: float = 30) -> bool:
    """``url`` answers 200 (a web starting or a database away: /readyz)."""
    try:
        return requests.get(url, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def statuses(order_ids) -> Counter:
    return Counter(Order.objects.filter(pk__in=list(order_ids)).values_list("status", flat=True))


def expected_deliveries() -> set[tuple[str, str]]:
    """(consumer, message id) for every delivery the outbox rows call for: one per point-to-point
    message, one per subscribed queue for a published event."""
    pairs: set[tuple[str, str]] = set()
    for message_id, exchange, routing_key, msg_type in OutboxMessage.objects.values_list(
            "message_id", "exchange", "queue", "type"):
        queues = EVENT_SUBSCRIPTIONS[msg_type] if exchange == EVENTS_EXCHANGE else (routing_key,)
        pairs.update((route_for(q).consumer, str(message_id)) for q in queues)
    return pairs


def messages_settled() -> bool:
    """Every outbox row published and handled by each of its consumers (one processed record each)."""
    return (not OutboxMessage.objects.filter(published_at__isnull=True).exists()
            and ProcessedMessage.objects.count() >= len(expected_deliveries()))


def queue_depths(names=None) -> dict[str, tuple[int, int]]:
    """{queue: (ready, consumers)} of queues the tests' topology declared (so each exists)."""
    return cast("dict[str, tuple[int, int]]", broker_mod.queue_depths(list(names or work_queues())))


def timer_lateness_seconds() -> list[float]:
    """For every timer: how long after its due time its consumer handled it (processed record)."""
    timers: dict[uuid.UUID, Any] = dict(
        OutboxMessage.objects.filter(due_at__isnull=False).values_list("message_id", "due_at"))
    handled = ProcessedMessage.objects.filter(message_id__in=[str(m) for m in timers]).values_list(
        "message_id", "processed_at")
    return [(processed_at - timers[uuid.UUID(message_id)]).total_seconds() for message_id, processed_at in handled]


# --- waiting under supervision ----------------------------------------------------------------
@dataclass
class Supervisor:
    """Restarts every dead process of ``names`` and counts how they died."""

    system: System
    names: tuple[str, ...]
    killed_by_us: set[int] = field(default_factory=set)  # pids we SIGKILLed ourselves
    deaths: Counter = field(default_factory=Counter)  # (name, how) -> n

    def tick(self) -> int:
        replaced = 0
        for name in self.names:
            for proc in self.system.replace_dead(name):
                if proc.pid in self.killed_by_us:
                    how = "killed"
                elif proc.returncode == -9:
                    how = "self-kill"  # FAULT_INJECTION's SIGKILL on itself
                else:
                    how = f"exit {proc.returncode}"
                self.deaths[(name, how)] += 1
                replaced += 1
        return replaced

    def kill(self, name: str, rng: random.Random) -> bool:
        alive = self.system.alive(name)
        if not alive:
            return False
        proc = rng.choice(alive)
        self.killed_by_us.add(proc.pid)
        self.system.kill_one(proc)
        return True

    def count(self, how: str, name: str | None = None) -> int:
        return sum(n for (nm, h), n in self.deaths.items() if h == how and (name is None or nm == name))

    def unexpected(self) -> dict:
        return {k: n for k, n in self.deaths.items() if k[1] not in {"killed", "self-kill"}}

    def wait(self, predicate, *, timeout: float, what: str, interval: float = 0.25) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.tick()
            if predicate():
                return time.monotonic() - started
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_for(predicate, *, timeout: float, what: str, interval: float = 0.2) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# --- logs ---------------------------------------------------------------------------------
def log_count(system: System, pattern: str, *, names: tuple[str, ...] | None = None) -> int:
    regex = re.compile(pattern)
    total = 0
    for path in system.log_dir.glob("*.log"):
        if names is not None and not any(path.stem == n or path.stem.startswith(f"{n}-") for n in names):
            continue
        total += sum(1 for line in path.read_text(errors="replace").splitlines() if regex.search(line))
    return total


def duplicates_absorbed(system: System) -> int:
    """Deliveries a consumer recognised as already handled (outcome=duplicate in its log)."""
    return log_count(system, r"outcome=duplicate")


# --- effects --------------------------------------------------------------------------------
@dataclass
class Effects:
    """Every effect of a set of orders, with what is missing and what happened twice."""

    orders: int
    statuses: Counter
    missing: list[str]
    doubled: list[str]
    waited_for_vehicle: int

    @property
    def lost(self) -> int:
        return self.orders - self.statuses.get("delivered", 0) - self.statuses.get("rejected", 0)


def effects(order_ids: list[str]) -> Effects:
    """Look at what every order left behind in every app, expecting each effect exactly once.

    delivered order: one reservation (picked), one shipment (delivered), each of the five
    lifecycle tracking events once (plus awaiting_vehicle once if it waited), the same stages
    once each in support's tracking entries, each customer notification (received, paid and the
    mailed stages) once, each order status once.
    rejected order: one rejected reservation, the notifications received and rejected, and
    nothing else downstream.
    """
    ids = [uuid.UUID(str(i)) for i in order_ids]
    missing: list[str] = []
    doubled: list[str] = []
    orders = {o.pk: o for o in Order.objects.filter(pk__in=ids)}
    reservations = Counter(Reservation.objects.filter(order_id__in=ids).values_list("order_id", flat=True))
    reservation_status = dict(Reservation.objects.filter(order_id__in=ids).values_list("order_id", "status"))
    shipments = defaultdict(list)
    for shipment_id, order_id in Shipment.objects.filter(order_id__in=ids).values_list("id", "order_id"):
        shipments[order_id].append(shipment_id)
    events: defaultdict[Any, Counter[str]] = defaultdict(Counter)
    for shipment_id, status in TrackingEvent.objects.filter(shipment__order_id__in=ids).values_list(
            "shipment_id", "status"):
        events[shipment_id][status] += 1
    entries: defaultdict[Any, Counter[str]] = defaultdict(Counter)
    for order_id, status in TrackingEntry.objects.filter(record__order_id__in=ids).values_list(
            "record__order_id", "status"):
        entries[order_id][status] += 1
    notes: defaultdict[Any, Counter[str]] = defaultdict(Counter)
    for order_id, status in CustomerNotification.objects.filter(order_id__in=ids).values_list("order_id", "status"):
        notes[order_id][status] += 1
    payments = defaultdict(list)
    for order_id, status in Payment.objects.filter(order_id__in=ids).values_list("order_id", "status"):
        payments[order_id].append(status)
    history: defaultdict[Any, Counter[str]] = defaultdict(Counter)
    for order_id, status in OrderStatusChange.objects.filter(order_id__in=ids).values_list("order_id", "status"):
        history[order_id][status] += 1

    def once(counter: Counter, keys, where: str, optional=()) -> None:
        """Each of ``keys`` exactly once, each of ``optional`` at most once, nothing else."""
        for key in keys:
            n = counter.get(key, 0)
            if n == 0:
                missing.append(f"{where}: {key}")
        for key, n in counter.items():
            if n > 1:
                doubled.append(f"{where}: {key} x{n}")
            if key not in keys and key not in optional:
                doubled.append(f"{where}: unexpected {key} x{n}")

    waited = 0
    for oid in ids:
        order = orders.get(oid)
        if order is None:
            missing.append(f"order {oid}")
            continue
        once(Counter({"r": reservations.get(oid, 0)}), ["r"], f"reservation of {oid}")
        if order.status == "rejected":
            once(history[oid], {"new", "rejected"}, f"status history of {oid}")
        else:
            # paid always comes before picking; confirmed and the transit stages may be skipped
            # when updates arrive out of order
            once(history[oid], {"new", "paid", order.status}, f"status history of {oid}",
                 optional={"confirmed", "picked_up", "in_transit", "out_for_delivery"})
        if order.status == "rejected":
            if reservation_status.get(oid) != Reservation.Status.REJECTED:
                missing.append(f"rejected reservation of {oid} (is {reservation_status.get(oid)})")
            for what, found in (("shipment", shipments[oid]), ("tracking entry", list(entries[oid])),
                                ("payment", payments[oid])):
                if found:
                    doubled.append(f"{what} of rejected order {oid}: {found}")
            once(notes[oid], {"received", "rejected"}, f"customer notifications of {oid}")
            continue
        if payments[oid] != [Payment.Status.CAPTURED]:
            (doubled if len(payments[oid]) > 1 else missing).append(f"captured payment of {oid}: {payments[oid]}")
        if reservation_status.get(oid) != Reservation.Status.PICKED:
            missing.append(f"picked reservation of {oid} (is {reservation_status.get(oid)})")
        if len(shipments[oid]) != 1:
            (missing if not shipments[oid] else doubled).append(f"shipment of {oid}: {shipments[oid]}")
            continue
        stages = set(LIFECYCLE)
        if events[shipments[oid][0]].get("awaiting_vehicle"):
            stages.add("awaiting_vehicle")
            waited += 1
        once(events[shipments[oid][0]], stages, f"tracking events of {shipments[oid][0]}")
        once(entries[oid], stages, f"support tracking entries of {oid}")
        # the customer is mailed of the order's steps that matter to them, each once
        once(notes[oid], {"received", "paid", *MAILED_STAGES}, f"customer notifications of {oid}")
    return Effects(orders=len(ids), statuses=statuses(order_ids), missing=missing, doubled=doubled,
                   waited_for_vehicle=waited)


def assert_each_order_delivered_once(ordered: dict[str, list[tuple[str, int]]], initial: dict[str, int], *,
                                     one_consumer_each: bool = True) -> None:
    """What every fault test asserts at its end: every order of ``ordered`` (id -> items) delivered,
    each of its effects in every app exactly once, every message handled once by each of its
    consumers, the stock ``initial`` less what was delivered, every vehicle back, no dead letter,
    every work queue empty (and with one consumer each unless ``one_consumer_each`` is False: a
    test that killed some of them)."""
    found = effects(list(ordered))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    assert found.lost == 0
    assert found.statuses == {"delivered": len(ordered)}
    assert found.missing == []
    assert found.doubled == []
    assert processed == outbox_rows == exactly_once
    assert stock() == expected_stock(initial, ordered, ordered)
    assert vehicles_all_available()
    assert DeadLetter.objects.count() == 0
    depths = queue_depths()
    if one_consumer_each:
        assert all(depth == (0, 1) for depth in depths.values()), depths
    else:
        assert all(depth is not None and depth[0] == 0 for depth in depths.values()), depths


def expected_stock(initial: dict[str, int], ordered: dict[str, list[tuple[str, int]]],
                   delivered_ids) -> dict[str, int]:
    result = dict(initial)
    for order_id in delivered_ids:
        for sku, quantity in ordered[order_id]:
            result[sku] -= quantity
    return result


def reserved_quantities() -> dict[str, int]:
    totals: Counter = Counter()
    for sku, quantity in ReservationLine.objects.values_list("stock_item__sku", "quantity"):
        totals[sku] += quantity
    return dict(totals)


def vehicles_all_available() -> bool:
    return set(Vehicle.objects.values_list("status", flat=True)) == {"available"}


def processed_matches_outbox() -> tuple[int, int, int]:
    """(deliveries the outbox calls for, processed records, deliveries handled exactly once).

    A point-to-point message is one delivery; a published event one per subscribed queue.
    """
    expected = expected_deliveries()
    processed = Counter(ProcessedMessage.objects.values_list("consumer", "message_id"))
    exactly_once = sum(1 for pair in expected if processed.get(pair) == 1)
    return len(expected), sum(processed.values()), exactly_once


# --- broker -----------------------------------------------------------------------------------
def publish_raw(channel, queue: str, body: bytes, *, message_id: str | None, msg_type: str | None,
                correlation_id: str = "", headers: dict | None = None) -> None:
    """Publish straight onto ``queue`` through the default exchange, confirmed by the broker."""
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=body,
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            type=msg_type,
            correlation_id=correlation_id or None,
            headers=headers,
            timestamp=int(time.time()),
        ),
        mandatory=True,
    )


def json_body(payload) -> bytes:
    return json.dumps(payload).encode()


def now_iso() -> str:
    return timezone.now().isoformat()

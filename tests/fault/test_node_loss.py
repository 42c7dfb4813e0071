"""A whole application node lost: two nodes (each the Procfile's web, relay, worker and sim_actors)
on one database and broker; while orders flow through node B's web, every process of node A is
killed with -9 and stays dead. Node B finishes every order, each step once.

Measured: how long the outbox rows that node A's relay held leased when it died (row locks of
its lease transaction, ``messaging/lease.py``) took to go out from node B's relay. Node A is
killed at a moment its relay is inside a lease (seen in pg_stat_activity: its connections carry
the application name "node-a relay")."""

from __future__ import annotations

import os
import random
import signal
import time
from datetime import UTC, datetime

import pytest
import requests
from django.db import connection

from messaging.models import OutboxMessage
from shop.models import Order
from tests.fault.servers import free_port_run
from tests.fault.tools import (
    answers,
    assert_each_order_delivered_once,
    customer_tokens,
    duplicates_absorbed,
    effects,
    messages_settled,
    order_body,
    processed_matches_outbox,
    random_items,
    wait_for,
)
from tests.harness import System

pytestmark = [pytest.mark.fault, pytest.mark.e2e]

NODE = ("web", "relay", "worker", "sim_actors")  # the Procfile's lines that every node runs
ORDERS = 40
KILL_AFTER = 15  # orders placed through node B before node A goes
CUSTOMERS = 3  # a customer may place 120 orders a minute (API_THROTTLE_ORDERS)
LEASE_WATCH_SECONDS = 30  # how long to wait for node A's relay to be inside a lease


def node_start(system: System, node: str, *, port: int) -> str:
    """Start one node's processes; returns its web's base URL."""
    for kind in NODE:
        system.start(f"{kind}#{node}", env={"WEB_PORT": str(port), "PGAPPNAME": f"node-{node} {kind}",
                                            "DJANGO_CACHE_DIR": str(system.log_dir / f"cache-{node}")})
    return f"http://127.0.0.1:{port}"


def node_kill(system: System, node: str) -> float:
    """kill -9 of every process of ``node`` at once (each its whole process group: gunicorn's
    workers too); returns the wall-clock time of the kill."""
    procs = [proc for kind in NODE for proc in system.alive(f"{kind}#{node}")]
    killed_at = time.time()
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        proc.wait(timeout=30)
    for kind in NODE:
        system.procs[f"{kind}#{node}"] = []
    return killed_at


def rows_leased_by(application_name: str) -> list[int]:
    """The unpublished outbox rows locked by the open lease transaction of the connection named
    ``application_name`` (none when it is not inside a lease)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT backend_xid::text FROM pg_stat_activity WHERE application_name = %s "
                       "AND state = 'idle in transaction' AND backend_xid IS NOT NULL", [application_name])
        xids = [row[0] for row in cursor.fetchall()]
        if not xids:
            return []
        cursor.execute(f"SELECT id FROM {OutboxMessage._meta.db_table} WHERE published_at IS NULL "
                       "AND xmax::text = ANY(%s)", [xids])
        return [row[0] for row in cursor.fetchall()]


def test_node_a_killed_while_orders_flow_through_node_b(fault_system, broker, initial_stock):
    # given: two nodes on the same database and broker, customers placing orders through node B
    system = fault_system
    port = free_port_run(2, start=37000, stop=38000)
    node_start(system, "a", port=port)
    url_b = node_start(system, "b", port=port + 1)
    sessions = []
    for token in customer_tokens("node", CUSTOMERS):
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        sessions.append(session)
    wait_for(lambda: answers(f"{url_b}/readyz", timeout=5), timeout=90, what="node B's web answering /readyz")
    rng = random.Random(random.randrange(1 << 30))
    ordered: dict[str, list[tuple[str, int]]] = {}

    def place() -> None:
        items = random_items(rng)
        response = sessions[len(ordered) % CUSTOMERS].post(f"{url_b}/api/orders/", json=order_body(items), timeout=30)
        assert response.status_code == 201, (response.status_code, response.text[:300])
        ordered[response.json()["order_id"]] = items

    try:
        for _ in range(KILL_AFTER):
            place()
            time.sleep(0.1)
        # when: node A's relay is inside a lease (orders keep coming meanwhile), every process of
        # node A is killed with -9, and none is started again
        leased: list[int] = []
        watch_until = time.monotonic() + LEASE_WATCH_SECONDS
        next_order = time.monotonic()
        while not leased and time.monotonic() < watch_until:
            if time.monotonic() >= next_order and len(ordered) < ORDERS:
                place()
                next_order = time.monotonic() + 0.15
            leased = rows_leased_by("node-a relay")
        killed_at = node_kill(system, "a")
        while len(ordered) < ORDERS:
            place()
            time.sleep(0.1)
        # then: node B's relay sends what node A's had leased, and node B finishes every order
        wait_for(lambda: not OutboxMessage.objects.filter(pk__in=leased, published_at__isnull=True).exists(),
                 timeout=120, what="the rows node A's relay had leased published")
        taken_over = OutboxMessage.objects.filter(pk__in=leased, published_at__gt=_aware(killed_at))
        takeover_seconds = max(((row.published_at.timestamp() - killed_at) for row in taken_over), default=None)
        settle_seconds = wait_for(
            lambda: Order.objects.filter(pk__in=list(ordered), status="delivered").count() == ORDERS
            and messages_settled(), timeout=180, what="every order delivered and every message handled")
    except AssertionError:
        print(system.log_tail(30))
        raise
    found = effects(list(ordered))
    outbox_rows, processed, exactly_once = processed_matches_outbox()
    takeover = "none left to take over" if takeover_seconds is None else f"{takeover_seconds:.2f}s"
    print(f"\n[node A lost] orders={len(ordered)} (node A killed after {KILL_AFTER}); rows node A's relay held "
          f"leased={len(leased)}, sent by node B's relay after the kill={taken_over.count()}, in {takeover}; "
          f"all delivered {settle_seconds:.1f}s after the last order\n"
          f"  lost={found.lost} doubled={len(found.doubled)} missing effects={len(found.missing)} "
          f"duplicate deliveries absorbed={duplicates_absorbed(system)} outbox rows={outbox_rows} "
          f"processed records={processed} handled exactly once={exactly_once}")
    assert all(system.alive(f"{kind}#b") for kind in NODE), "a process of node B died"
    assert len(ordered) == ORDERS
    # (node A's consumers are gone for good: some queues have one consumer fewer)
    assert_each_order_delivered_once(ordered, initial_stock, one_consumer_each=False)


def _aware(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)

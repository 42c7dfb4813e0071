"""pipeline.json: N orders from POST /api/orders/ to delivered, black-box, on the production path.

Every process of the Procfile runs as a deployment runs it (gunicorn web, the relay, one worker
per queue including the demo's simulated actors, django-q2's stock qcluster), started from the
Procfile's own command lines. Every timed step (the payment provider's answer, picking, each
transit stage) is a timer: a message due later, sent by the relay when due and handled by a
queue worker. SIM_TIME_SCALE is tiny but not zero (0.001 by default: picking 2 ms, each stage
1-3 ms), so every step takes that road; the figure is what the plumbing sustains.

Concurrent API clients POST the orders as fast as the web answers; the run ends when every one
is delivered. Besides orders/s it reports the CPU each process used per order (from /proc,
children included: gunicorn's workers), which says where the machine's two cores go.

``PIPELINE_TIME_SCALE`` sets another scale; ``BENCH_ROOT`` runs the processes of another
checkout of this project (to measure an earlier version the same way; see docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    ROOT,
    Processes,
    broker_reset,
    cpu_seconds,
    database_reset,
    median_of,
    percentile,
    wait_for,
    write_result,
)

ORDERS = 300
CLIENTS = 8
# The same code gave figures some 20% apart in runs minutes apart on this machine: the median of five.
REPEATS = 5
TIME_SCALE = os.environ.get("PIPELINE_TIME_SCALE", "0.001")
PROCESS_ROOT = Path(os.environ.get("BENCH_ROOT") or ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_entries(root: Path) -> dict[str, str]:
    """The Procfile's ``name: command`` lines, parsed by honcho (what ``make run`` starts)."""
    from honcho.environ import parse_procfile

    return dict(parse_procfile((root / "Procfile").read_text()).processes)


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live descendants (gunicorn's workers, qcluster's forks)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            total += cpu_seconds(current)
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return total


# The servers the processes talk to, by command name: their CPU is the system's too.
SERVERS = {"postgres": ("postgres",), "rabbitmq": ("beam.smp", "erl_child_setup")}


def servers_cpu_seconds() -> dict[str, dict[int, float]]:
    """CPU time of every PostgreSQL and RabbitMQ process on the machine, by pid."""
    found: dict[str, dict[int, float]] = {name: {} for name in SERVERS}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            for name, comms in SERVERS.items():
                if comm in comms:
                    found[name][int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:
            continue
    return found


def cpu_snapshot(procs: Processes) -> dict[str, float]:
    return {name: tree_cpu_seconds(proc.pid) for name, proc in procs.procs.items()}


def servers_cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds each server used between two readings (a process that ended meanwhile is missed)."""
    return {name: sum(t - before[name].get(pid, 0.0) for pid, t in after[name].items()) for name in after}


def one_run(orders: int = ORDERS) -> dict:
    """``orders`` orders placed and delivered on a reset database and broker (ha_bench runs fewer)."""
    broker_reset()
    database_reset()
    return orders_run(orders=orders)


def orders_run(*, orders: int = ORDERS, env: dict[str, str] | None = None) -> dict:
    """``orders`` orders through every Procfile process on the database as it is (the caller
    reset what it wanted reset); ``env``: more for the processes (another DATABASE_URL, say)."""
    from django.core.management import call_command

    from shop.models import Order
    from shop.services import customer_create
    from simulation.demo_data import SEED_ORDER

    call_command("load_demo_data", stock=1_000_000, verbosity=0)
    tokens = [customer_create(username=f"client{i}", email=f"c{i}@example.com")[1] for i in range(CLIENTS)]
    port = free_port()
    env = {
        "SIM_TIME_SCALE": TIME_SCALE,
        "API_THROTTLE_ORDERS": "1000000/minute",
        "API_THROTTLE_USER": "1000000/minute",
        "WEB_PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **(env or {}),
    }
    with Processes(env=env, cwd=PROCESS_ROOT) as procs:
        for name, command in procfile_entries(PROCESS_ROOT).items():
            procs.start(name, ["bash", "-c", f"exec {command}"])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), timeout=60, what="the web server")
        time.sleep(3)  # every worker connected and idle

        body = copy.deepcopy(SEED_ORDER)
        body["items"] = [{"product_id": "PRD004", "quantity": 1}]
        resets: list[Any] = []

        def place(i: int) -> tuple[float, str]:
            session = sessions[i % CLIENTS]
            t0 = time.perf_counter()
            try:
                response = session.post(f"{base}/api/orders/", json=body, timeout=30)
            except requests.ConnectionError:
                # A connection reset under load: count it and send again on a new connection.
                resets.append(i)
                session.close()
                response = session.post(f"{base}/api/orders/", json=body, timeout=30)
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
            return elapsed, response.json()["order_id"]

        sessions = []
        for token in tokens:
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            sessions.append(session)
        cpu_before, servers_before = cpu_snapshot(procs), servers_cpu_seconds()
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(place, range(orders)))
        posted = time.perf_counter()
        order_ids = [oid for _, oid in results]
        wait_for(lambda: Order.objects.filter(pk__in=order_ids, status="delivered").count() == orders,
                 timeout=600, what=f"{orders} orders delivered", interval=0.1)
        finished = time.perf_counter()
        cpu_after, servers_after = cpu_snapshot(procs), servers_cpu_seconds()
    post_ms = [ms for ms, _ in results]
    cpu_ms = {name: (cpu_after[name] - cpu_before[name]) * 1000 / orders for name in cpu_after}
    servers_used = servers_cpu_used(servers_before, servers_after)
    servers_ms = {name: seconds * 1000 / orders for name, seconds in servers_used.items()}
    return {
        "orders_per_s": orders / (finished - started),
        "post_p50_ms": percentile(post_ms, 0.5),
        "post_p99_ms": percentile(post_ms, 0.99),
        "posting_seconds": posted - started,
        "post_to_all_delivered_seconds": finished - started,
        "post_connection_resets": len(resets),
        "cpu_ms_per_order": {name: round(ms, 2) for name, ms in sorted(cpu_ms.items(), key=lambda kv: -kv[1])},
        "cpu_ms_per_order_total": round(sum(cpu_ms.values()), 2),
        "server_cpu_ms_per_order": {name: round(ms, 2) for name, ms in servers_ms.items()},
        "machine_cpu_ms_per_order": round(sum(cpu_ms.values()) + sum(servers_ms.values()), 2),
    }


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/api/orders/", timeout=2).status_code == 401
    except requests.RequestException:
        return False


def _median_per_process(runs: Iterable[dict]) -> dict[str, float]:
    runs = list(runs)
    names = runs[0]["cpu_ms_per_order"]
    per = {name: round(sorted(r["cpu_ms_per_order"].get(name, 0.0) for r in runs)[len(runs) // 2], 2) for name in names}
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


def run(repeats: int = REPEATS) -> dict:
    runs = [one_run() for _ in range(repeats)]
    database_reset()
    scalar = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    figures = {
        "orders_per_run": ORDERS,
        "concurrent_clients": CLIENTS,
        "sim_time_scale": float(TIME_SCALE),
        "process_root": str(PROCESS_ROOT),
        **{key: round(median_of(runs, key), 2) for key in scalar},
        "cpu_ms_per_order": _median_per_process(runs),
        "server_cpu_ms_per_order": {name: round(statistics.median_low(r["server_cpu_ms_per_order"][name]
                                                                      for r in runs), 2)
                                    for name in SERVERS},
        "targets": {"orders_per_s": ">= 30"},
    }
    write_result(os.environ.get("PIPELINE_RESULT", "pipeline"), figures, runs)
    return figures

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

``PIPELINE_TIME_SCALE`` sets another scale, ``PIPELINE_ORDERS`` another number of orders a run;
``BENCH_ROOT`` runs the processes of another checkout of this project on this one's schema.

``run(reference="4c66d6f")`` (``bench/run.py pipeline --reference 4c66d6f``) runs this checkout
and that commit in turns, each from its own worktree, database and vhost (bench/versions.py),
and adds the reference's medians and the paired ratios to pipeline.json; docs/benchmarks.md.
"""

from __future__ import annotations

import copy
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import (
    LOGS,
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

ORDERS = int(os.environ.get("PIPELINE_ORDERS", "300"))
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


def servers_cpu_seconds(postgres_pid: int | None = None) -> dict[str, dict[int, float]]:
    """CPU time of every PostgreSQL and RabbitMQ process on the machine, by pid; with
    ``postgres_pid``, PostgreSQL's are that postmaster and its children only (one cluster)."""
    found: dict[str, dict[int, float]] = {name: {} for name in SERVERS}
    cluster = _descendants(postgres_pid) if postgres_pid else None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            for name, comms in SERVERS.items():
                if comm in comms and (name != "postgres" or cluster is None or int(entry.name) in cluster):
                    found[name][int(entry.name)] = cpu_seconds(int(entry.name))
        except OSError:
            continue
    return found


def _descendants(pid: int) -> set[int]:
    found, stack = set(), [pid]
    while stack:
        current = stack.pop()
        found.add(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def postmaster_pid(database_url: str) -> int | None:
    """The pid of the postmaster serving ``database_url`` when it runs on this machine and its data
    folder is readable (the checkout's own cluster, as make bench starts it); else None."""
    import psycopg

    try:
        with psycopg.connect(database_url.replace("postgresql://", "postgres://", 1), autocommit=True) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
        if row is None:
            raise RuntimeError("SHOW data_directory answered no row")
        folder = row[0]
        pid = int((Path(folder) / "postmaster.pid").read_text().split()[0])
        return pid if Path(f"/proc/{pid}").exists() else None
    except (psycopg.Error, OSError, ValueError, IndexError):
        return None


def host_cpu_seconds() -> float:
    """CPU time every core of the machine spent busy so far (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


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

    call_command("load_demo_data", stock=1_000_000, verbosity=0)
    tokens = [customer_create(username=f"client{i}", email=f"c{i}@example.com")[1] for i in range(CLIENTS)]

    def delivered(order_ids: list[str]) -> int:
        return Order.objects.filter(pk__in=order_ids, status="delivered").count()

    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return procfile_run(root=PROCESS_ROOT, env=env, tokens=tokens, delivered=delivered, orders=orders,
                        logs=LOGS / "pipeline")


def procfile_run(*, root: Path, env: dict[str, str], tokens: list[str], delivered, orders: int,
                 logs: Path = LOGS, postgres_pid: int | None = None) -> dict:
    """Every process of ``root``'s Procfile started with ``env``; ``orders`` orders POSTed by the
    customers of ``tokens``; done when ``delivered(order_ids)`` counts them all. The figures of the run.

    ``postgres_pid``: the postmaster of the benchmark's cluster, whose processes alone are then
    counted as PostgreSQL's CPU (else every postgres process on the machine).
    """
    port = free_port()
    env = {
        "SIM_TIME_SCALE": TIME_SCALE,
        "API_THROTTLE_ORDERS": "1000000/minute",
        "API_THROTTLE_USER": "1000000/minute",
        "WEB_PORT": str(port),
        **env,
    }
    load_before = os.getloadavg()
    with Processes(env=env, cwd=root, logs=logs) as procs:
        for name, command in procfile_entries(root).items():
            procs.start(name, ["bash", "-c", f"exec {command}"])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), timeout=60, what="the web server")
        time.sleep(3)  # every worker connected and idle

        from simulation.demo_data import SEED_ORDER  # the seed's request body (a public contract)

        body = copy.deepcopy(SEED_ORDER)
        body["items"] = [{"product_id": "PRD004", "quantity": 1}]
        resets: list[int] = []
        stopping = threading.Event()  # set when the run ends early (Ctrl-C, SIGTERM): no more POSTs

        def place(i: int) -> tuple[float, str]:
            if stopping.is_set():
                raise RuntimeError("stopped")
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
        cpu_before, servers_before = cpu_snapshot(procs), servers_cpu_seconds(postgres_pid)
        host_before = host_cpu_seconds()
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(CLIENTS) as pool:
                results = list(pool.map(place, range(orders)))
        finally:
            stopping.set()
        posted = time.perf_counter()
        order_ids = [oid for _, oid in results]
        wait_for(lambda: delivered(order_ids) == orders, timeout=600, what=f"{orders} orders delivered",
                 interval=0.1)
        finished = time.perf_counter()
        cpu_after, servers_after = cpu_snapshot(procs), servers_cpu_seconds(postgres_pid)
        host_after = host_cpu_seconds()
    load_after = os.getloadavg()
    deliveries = handled_per_queue(logs)
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
        # every CPU of the machine, other users' work included (/proc/stat): the run's share of a shared machine
        "host_cpu_ms_per_order": round((host_after - host_before) * 1000 / orders, 2),
        # what the workers said they handled when they stopped (every delivery of the run, warm-up none)
        "deliveries_per_order": round(sum(deliveries.values()) / orders, 2) if deliveries else None,
        "deliveries_per_order_by_queue": {queue: round(n / orders, 2) for queue, n in sorted(deliveries.items())},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def handled_per_queue(logs: Path) -> dict[str, int]:
    """``worker <queue> stopped: handled=N ...``, the line each queue's worker prints when it stops,
    from the logs of a run's processes."""
    import re

    counts: dict[str, int] = {}
    for log in logs.glob("*.log"):
        for queue, handled in re.findall(r"worker (\S+) stopped: handled=(\d+)", log.read_text(errors="replace")):
            counts[queue] = counts.get(queue, 0) + int(handled)
    return counts


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


def _summary(runs: list[dict]) -> dict:
    """The medians of a version's runs (a process's CPU: the median of its own figures)."""
    scalar = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    return {
        **{key: round(median_of(runs, key), 2) for key in scalar},
        "cpu_ms_per_order": _median_per_process(runs),
        "server_cpu_ms_per_order": {name: round(statistics.median_low(r["server_cpu_ms_per_order"][name]
                                                                      for r in runs), 2)
                                    for name in SERVERS},
    }


def run(repeats: int = REPEATS, reference: str | None = None) -> dict:
    if reference:
        return compare(pairs=repeats, reference=reference)
    runs = [one_run() for _ in range(repeats)]
    database_reset()
    figures = {
        "orders_per_run": ORDERS,
        "concurrent_clients": CLIENTS,
        "sim_time_scale": float(TIME_SCALE),
        "process_root": str(PROCESS_ROOT),
        **_summary(runs),
        "targets": {"orders_per_s": ">= 30"},
    }
    write_result(os.environ.get("PIPELINE_RESULT", "pipeline"), figures, runs)
    return figures


# --- the current checkout beside an earlier commit, in turns ------------------------------------

PAIRS = 3


def version_run(version, *, orders: int, postgres_pid: int | None) -> dict:
    """One run of ``version`` as a fresh deployment: its database emptied and migrated, its vhost
    made afresh with its own topology, the demo data with ample stock, CLIENTS customers; then
    ``orders`` orders through its Procfile."""
    import shutil

    from bench import versions

    versions.database_reset(version)
    versions.broker_reset(version)
    version.manage("load_demo_data", "--stock", "1000000", timeout=180)
    tokens = versions.customers_create(version, CLIENTS)
    shutil.rmtree(version.root / ".run" / "prometheus", ignore_errors=True)  # as make run does
    counter = versions.DeliveredCounter(version)
    try:
        return procfile_run(root=version.root, env=version.env(), tokens=tokens, delivered=counter, orders=orders,
                            logs=LOGS / f"pipeline-{version.label}", postgres_pid=postgres_pid)
    finally:
        counter.close()


def _ratios(runs: dict[str, list[dict]], key: str) -> list[float]:
    return [round(a[key] / b[key], 3) if b[key] else float("nan")
            for a, b in zip(runs["current"], runs["reference"], strict=False)]


def compare(*, pairs: int = PAIRS, reference: str) -> dict:
    """The pipeline of this checkout and of ``reference`` (a commit), run in turns: current,
    reference, current, reference, ... ``pairs`` times, each run with the same number of orders
    on its own database and vhost. The current one's medians keep the single run's keys; the
    reference's and the paired ratios (current / reference, median) are added."""
    from bench import versions

    current, earlier = versions.current_version(), versions.reference_version(reference)
    both = (current, earlier)
    for version in both:
        versions.database_prepare(version)
    postgres_pid = postmaster_pid(current.database_url)
    runs: dict[str, list[dict]] = {"current": [], "reference": []}
    left: dict[str, int] = {}
    try:
        for pair in range(1, pairs + 1):
            for version in both:
                result = version_run(version, orders=ORDERS, postgres_pid=postgres_pid)
                runs[version.label].append(result)
                print(f"  pair {pair}/{pairs} {version.label} ({version.commit[:7]}): "
                      f"{result['orders_per_s']:.2f} orders/s, machine CPU {result['machine_cpu_ms_per_order']:.1f} "
                      f"ms/order, load {result['load_average_after'][0]:.2f}", flush=True)
    finally:
        for version in both:  # nothing of ours may stay attached to the broker
            left[version.label] = versions.broker_connections(version)
            deadline = time.monotonic() + 15
            while left[version.label] and time.monotonic() < deadline:
                time.sleep(1)
                left[version.label] = versions.broker_connections(version)
    orders_ratio, cpu_ratio = _ratios(runs, "orders_per_s"), _ratios(runs, "machine_cpu_ms_per_order")
    figures = {
        "orders_per_run": ORDERS,
        "concurrent_clients": CLIENTS,
        "sim_time_scale": float(TIME_SCALE),
        "process_root": str(current.root),
        **_summary(runs["current"]),
        "targets": {"orders_per_s": ">= 30", "orders_per_s_ratio_to_reference": ">= 1.0 (moonshot 1.3)"},
        "reference": {"commit": earlier.commit, **_summary(runs["reference"])},
        "comparison": {
            "reference": reference,
            "pairs": pairs,
            "order": "current, reference, in turns, each pair started with the current checkout",
            "orders_per_s_ratio_per_pair": orders_ratio,
            "orders_per_s_ratio_median": round(statistics.median(orders_ratio), 3),
            "machine_cpu_ms_per_order_ratio_per_pair": cpu_ratio,
            "machine_cpu_ms_per_order_ratio_median": round(statistics.median(cpu_ratio), 3),
            "process_cpu_ms_per_order": {
                name: [figures_of(runs["current"]).get(name), figures_of(runs["reference"]).get(name)]
                for name in sorted(set(figures_of(runs["current"])) | set(figures_of(runs["reference"])))},
        },
        "versions": {version.label: version.describe() for version in both},
        "broker_connections_left": left,
    }
    all_runs = [{"version": label, "pair": i + 1, **r} for label, rs in runs.items() for i, r in enumerate(rs)]
    write_result(os.environ.get("PIPELINE_RESULT", "pipeline"), figures, all_runs)
    if any(left.values()):
        raise RuntimeError(f"connections left on the broker after the runs: {left}")
    return figures


def figures_of(runs: list[dict]) -> dict[str, float]:
    """Per process CPU per order (median), the servers' beside them."""
    return {**_median_per_process(runs),
            **{f"server:{name}": round(statistics.median_low(r["server_cpu_ms_per_order"][name] for r in runs), 2)
               for name in SERVERS}}

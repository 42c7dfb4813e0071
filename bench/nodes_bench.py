"""Past one machine: request limits shared by two web nodes, and an application node lost (`nodes`).

limits: two web nodes (the Procfile's web line twice, each on a port and cache folder of its
own, as two machines run it) take one user's requests from CLIENTS concurrent clients, spread
over both: how many get through beyond the budget (LIMIT a minute) -- with REDIS_URL (one Redis
that both count in: scripts/ensure_redis.sh) and without (each node counts in its own files).

node loss: two nodes (each the Procfile's web, relay, worker and sim_actors) on one database and
broker; orders go through node B's web; when node A's relay is inside a lease (its connection,
named by PGAPPNAME, is in a transaction holding outbox rows), every process of node A is killed
with -9. Measured: seconds until node B's relay published the rows node A's held, and until
every order is delivered.

Writes bench/results/ha.json: the ``limits_*`` and ``node_loss_*`` keys only; every other key in
the file (the database failover's) is kept as it was.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import requests

from bench.common import LOGS, RESULTS, ROOT, Processes, broker_reset, database_reset, wait_for
from bench.pipeline_bench import free_port, procfile_entries

REPEATS = 3
CLIENTS = 50
LIMIT = 100  # the user's budget a minute
REQUESTS = 300
ORDERS = 40
KILL_AFTER = 15
NODE = ("web", "relay", "worker", "sim_actors")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _node(name: str, *, port: int, env: dict[str, str], kinds=("web",)) -> Processes:
    """One node's processes from the Procfile, with an environment of its own."""
    cache = LOGS / f"cache-{name}-{uuid.uuid4().hex[:8]}"  # a machine's own files, fresh each run
    procs = Processes(env={**env, "WEB_PORT": str(port), "DJANGO_CACHE_DIR": str(cache),
                           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    procfile = procfile_entries(ROOT)
    for kind in kinds:
        procs.env["PGAPPNAME"] = f"node-{name} {kind}"
        procs.start(f"{name}-{kind}", ["bash", "-c", f"exec {procfile[kind]}"])
    return procs


# --- limits -----------------------------------------------------------------------------------
def limits_run(redis_url: str | None) -> dict:
    from shop.services import customer_create

    database_reset()
    _, token = customer_create(username="limited", email="limited@example.com")
    env = {"API_THROTTLE_USER": f"{LIMIT}/minute", "REDIS_URL": redis_url or "", "LOG_LEVEL": "WARNING"}
    if redis_url:
        import redis

        redis.from_url(redis_url).flushdb()  # the benchmark's own Redis: last run's windows gone
    port = free_port()
    other = free_port()
    with _node("a", port=port, env=env), _node("b", port=other, env=env):
        urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{other}"]
        for url in urls:
            wait_for(partial(_answers, f"{url}/healthz"), timeout=90, what=f"{url}/healthz")

        def one(n: int) -> int:
            return requests.get(f"{urls[n % 2]}/api/orders/", headers={"Authorization": f"Token {token}"},
                                timeout=60).status_code

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            codes = Counter(pool.map(one, range(REQUESTS)))
        seconds = time.perf_counter() - started
    if set(codes) - {200, 429}:
        raise RuntimeError(f"answers other than 200 and 429: {dict(codes)}")
    return {"through": codes[200], "overshoot": codes[200] - LIMIT, "requests_per_s": round(REQUESTS / seconds, 1)}


# --- node loss ----------------------------------------------------------------------------------
def _rows_leased_by(application_name: str) -> list[int]:
    from django.db import connection

    from messaging.models import OutboxMessage

    with connection.cursor() as cursor:
        cursor.execute("SELECT backend_xid::text FROM pg_stat_activity WHERE application_name = %s "
                       "AND state = 'idle in transaction' AND backend_xid IS NOT NULL", [application_name])
        xids = [row[0] for row in cursor.fetchall()]
        if not xids:
            return []
        cursor.execute(f"SELECT id FROM {OutboxMessage._meta.db_table} WHERE published_at IS NULL "
                       "AND xmax::text = ANY(%s)", [xids])
        return [row[0] for row in cursor.fetchall()]


def node_loss_run() -> dict:
    from django.core.management import call_command

    from messaging.models import OutboxMessage
    from shop.models import Order
    from shop.services import customer_create
    from simulation.demo_data import SEED_ORDER

    broker_reset()
    database_reset()
    call_command("load_demo_data", stock=100_000, verbosity=0)
    tokens = [customer_create(username=f"node{i}", email=f"n{i}@example.com")[1] for i in range(2)]
    env = {"SIM_TIME_SCALE": "0", "PAYMENT_TIMEOUT_SECONDS": "300"}
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD004", "quantity": 1}]
    port_a, port_b = free_port(), free_port()
    node_a = _node("a", port=port_a, env=env, kinds=NODE)
    with _node("b", port=port_b, env=env, kinds=NODE):
        try:
            url = f"http://127.0.0.1:{port_b}"
            wait_for(lambda: _answers(f"{url}/readyz"), timeout=90, what="node B's /readyz")
            wait_for(lambda: _answers(f"http://127.0.0.1:{port_a}/readyz"), timeout=90, what="node A's /readyz")
            sessions = []
            for token in tokens:
                session = requests.Session()
                session.headers["Authorization"] = f"Token {token}"
                sessions.append(session)
            ordered: list[str] = []

            def place() -> None:
                response = sessions[len(ordered) % 2].post(f"{url}/api/orders/", json=body, timeout=30)
                if response.status_code != 201:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text[:200]}")
                ordered.append(response.json()["order_id"])

            for _ in range(KILL_AFTER):
                place()
                time.sleep(0.1)
            leased: list[int] = []
            watch_until, next_order = time.monotonic() + 30, time.monotonic()
            while not leased and time.monotonic() < watch_until:
                if time.monotonic() >= next_order and len(ordered) < ORDERS:
                    place()
                    next_order = time.monotonic() + 0.15
                leased = _rows_leased_by("node-a relay")
            killed_at = time.time()
            for proc in node_a.procs.values():
                os.killpg(proc.pid, signal.SIGKILL)
            for proc in node_a.procs.values():
                proc.wait(timeout=30)
            node_a.procs.clear()
            while len(ordered) < ORDERS:
                place()
                time.sleep(0.1)
            last_order = time.time()
            wait_for(lambda: not OutboxMessage.objects.filter(pk__in=leased, published_at__isnull=True).exists(),
                     timeout=120, what="the rows node A's relay had leased published")
            after = [row.published_at.timestamp() for row in OutboxMessage.objects.filter(  # type: ignore[union-attr]  # not null: filtered below
                pk__in=leased, published_at__gt=datetime.fromtimestamp(killed_at, tz=UTC))]
            wait_for(lambda: Order.objects.filter(pk__in=ordered, status="delivered").count() == ORDERS,
                     timeout=300, what=f"{ORDERS} orders delivered", interval=0.2)
            delivered_at = time.time()
        finally:
            node_a.stop()
    return {
        "rows_leased_by_a": len(leased),
        "rows_taken_over_by_b": len(after),
        "takeover_seconds": round(max(after) - killed_at, 3) if after else None,
        "all_delivered_after_last_order_seconds": round(delivered_at - last_order, 1),
    }


def _redis_url() -> str:
    done = subprocess.run([str(ROOT / "scripts" / "ensure_redis.sh")], capture_output=True, text=True, check=True,
                          env={**os.environ, "REDIS_PORT": os.environ.get("BENCH_REDIS_PORT", "56380")})
    return done.stdout.strip()


def run(repeats: int = REPEATS) -> dict:
    redis_url = _redis_url()
    with_redis = [limits_run(redis_url) for _ in range(repeats)]
    without_redis = [limits_run(None) for _ in range(repeats)]
    losses = [node_loss_run() for _ in range(repeats)]
    takeovers = [r["takeover_seconds"] for r in losses if r["takeover_seconds"] is not None]
    figures = {
        "limits_clients": CLIENTS,
        "limits_web_nodes": 2,
        "limits_budget": LIMIT,
        "limits_requests": REQUESTS,
        "limits_overshoot_with_redis_max": max(r["overshoot"] for r in with_redis),
        "limits_overshoot_without_redis_median": statistics.median(r["overshoot"] for r in without_redis),
        "limits_requests_per_s_with_redis_median": statistics.median(r["requests_per_s"] for r in with_redis),
        "limits_requests_per_s_without_redis_median": statistics.median(r["requests_per_s"] for r in without_redis),
        "limits_runs": {"with_redis": with_redis, "without_redis": without_redis},
        "node_loss_orders": ORDERS,
        "node_loss_takeover_seconds_max": max(takeovers) if takeovers else None,
        "node_loss_takeover_seconds_median": statistics.median(takeovers) if takeovers else None,
        "node_loss_all_delivered_after_last_order_seconds_median": statistics.median(
            r["all_delivered_after_last_order_seconds"] for r in losses),
        "node_loss_runs": losses,
    }
    path = RESULTS / "ha.json"
    document = json.loads(path.read_text()) if path.exists() else {}
    document = {k: v for k, v in document.items() if not k.startswith(("limits_", "node_loss_"))}
    document.update(figures)
    document.setdefault("machine", {"cpus": os.cpu_count()})
    document["limits_node_loss_measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    return {k: v for k, v in figures.items() if not k.endswith("_runs")}

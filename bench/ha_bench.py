"""ha.json (this benchmark's keys: failover_*, pipeline_*): a PostgreSQL primary with a
synchronous standby, measured two ways.

1. **Failover.** The whole system from the Procfile on a primary and its synchronous standby
   (scripts/pg_ha.sh), one DATABASE_URL naming both (target_session_attrs=read-write). Clients
   place orders with an Idempotency-Key each, retrying a 503 with the same key
   (tests/fault/ordering.py, the fault test's own client); the primary's postmaster and backends
   are killed -9, DOWN_SECONDS later the standby is promoted (``pg_ctl promote``). Measured from
   the promotion: the first order accepted, the orders accepted as fast as before the kill
   (FULL_SPEED_RUN in a row at FULL_SPEED_SHARE of the rate before), every order delivered.
   Nothing is restarted or reconfigured. A fresh pair per run.
2. **The cost of the synchronous standby.** The pipeline benchmark's own run
   (``pipeline_bench.one_run``, PIPELINE_ORDERS orders) on the pair, and on a lone primary
   started alike (scripts/ensure_postgres.sh: same server options, also over TCP with the same
   URL options), taken in turns (alone, pair, alone, pair ...) so the machine's drift falls on
   both. Every commit on the pair waits for the standby's flush.

Other benchmarks (and other keys of ha.json, written by other code) are left as they are: this
one reads the file and replaces its own keys only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import requests

from bench import pipeline_bench
from bench.common import BENCH_DB, RESULTS, ROOT, Processes, broker_reset, database_reset, wait_for

PG_HA_SCRIPT = ROOT / "scripts" / "pg_ha.sh"
POSTGRES_SCRIPT = ROOT / "scripts" / "ensure_postgres.sh"
PIPELINE_ORDERS = 100
CLIENTS = 4
BEFORE = 30  # orders accepted before the kill
AFTER = 30  # orders accepted after the promotion, at least
DOWN_SECONDS = 3
REPEATS = 3
URL_OPTIONS = "target_session_attrs=read-write&connect_timeout=2"


def _free_ports(count: int, start: int = 56400, stop: int = 57000) -> int:
    """The first port P from ``start`` with P..P+count-1 free on 127.0.0.1."""
    for port in range(start, stop, count):
        try:
            with contextlib.ExitStack() as stack:
                for offset in range(count):
                    sock = stack.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port + offset))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no {count} free ports between {start} and {stop}")


def _run(command: list[str], env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout,
                            check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr[-2000:]}")
    return result.stdout.strip()


class Pair:
    """A primary and its synchronous standby (scripts/pg_ha.sh) in .run/bench-pg-ha/."""

    def __init__(self, port: int) -> None:
        self.env = {"PG_HA_DIR": str(ROOT / ".run" / "bench-pg-ha"), "PG_HA_PORT": str(port), "PG_HA_DB": BENCH_DB}

    def script(self, *args: str) -> str:
        return _run([str(PG_HA_SCRIPT), *args], self.env)

    def start(self) -> str:
        self.script("destroy")
        return self.script("start")

    def destroy(self) -> None:
        self.script("destroy")


class Lone:
    """A primary without a standby (scripts/ensure_postgres.sh), in .run/bench-pg-lone/."""

    data = ROOT / ".run" / "bench-pg-lone"

    def __init__(self, port: int) -> None:
        self.port = port

    def start(self) -> str:
        env = {"PG_PORT": str(self.port), "PG_DATA": str(self.data), "DATABASE_URL": ""}
        _run([str(POSTGRES_SCRIPT)], env)
        return f"postgres://postgres@127.0.0.1:{self.port}/{BENCH_DB}?{URL_OPTIONS}"

    def destroy(self) -> None:
        bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(self.data), "stop", "-m", "immediate"],
                       capture_output=True, timeout=120, check=False)
        subprocess.run(["rm", "-rf", str(self.data)], check=False)


@contextlib.contextmanager
def database_at(url: str) -> Iterator[None]:
    """This process (its default connection) and the processes it starts use ``url`` meanwhile;
    its database is created and migrated first."""
    import psycopg
    from django.core.management import call_command
    from django.db import connections

    from config.database_url import database_settings

    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    default = connections["default"]
    saved, saved_url = dict(default.settings_dict), os.environ["DATABASE_URL"]
    parsed = database_settings(url, conn_max_age=0, conn_health_checks=True)
    default.close()
    default.settings_dict.update({key: parsed[key] for key in ("NAME", "USER", "PASSWORD", "HOST", "PORT")})
    default.settings_dict["OPTIONS"] = {**saved["OPTIONS"], **parsed["OPTIONS"]}
    os.environ["DATABASE_URL"] = url
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        default.close()
        default.settings_dict.clear()
        default.settings_dict.update(saved)
        os.environ["DATABASE_URL"] = saved_url


def failover_one_run(pair: Pair) -> dict:
    from django.core.management import call_command
    from django.db import connections

    from shop.models import Order
    from shop.services import customer_create
    from tests.fault.ordering import OrderClient, full_speed_at, rate

    broker_reset()
    database_reset()
    call_command("load_demo_data", stock=1_000_000, verbosity=0)
    tokens = [customer_create(username=f"ha{i}", email=f"ha{i}@example.com")[1] for i in range(CLIENTS)]
    port = pipeline_bench.free_port()
    env = {
        "SIM_TIME_SCALE": pipeline_bench.TIME_SCALE,
        "API_THROTTLE_ORDERS": "1000000/minute",
        "API_THROTTLE_USER": "1000000/minute",
        "WEB_PORT": str(port),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with Processes(env=env) as procs:
        for name, command in pipeline_bench.procfile_entries(ROOT).items():
            procs.start(name, ["bash", "-c", f"exec {command}"])
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base), timeout=90, what="the web server")
        time.sleep(3)  # every worker connected and idle
        clients = [OrderClient(base, [token]) for token in tokens]
        for client in clients:
            client.start()

        def accepted() -> list:
            return sorted((a for c in clients for a in list(c.accepted)), key=lambda a: a.at)

        wait_for(lambda: len(accepted()) >= BEFORE, timeout=120, what=f"{BEFORE} orders accepted", interval=0.1)
        rate_before = rate(accepted())
        killed_at = time.monotonic()
        pair.script("kill", "primary")
        time.sleep(DOWN_SECONDS)
        pair.script("promote")
        promoted_at = time.monotonic()
        wait_for(lambda: sum(1 for a in accepted() if a.at > promoted_at) >= AFTER, timeout=180,
                 what=f"{AFTER} orders accepted after the promotion", interval=0.1)
        wait_for(lambda: full_speed_at(accepted(), since=promoted_at, rate=rate_before) is not None,
                 timeout=120, what="orders accepted as fast as before", interval=0.1)
        for client in clients:
            client.stopping.set()
        for client in clients:
            client.stop()
        connections["default"].close()  # it went with the primary
        placed = [a.order_id for a in accepted()]
        wait_for(lambda: Order.objects.filter(pk__in=placed, status="delivered").count() == len(placed),
                 timeout=600, what="every order delivered", interval=0.2)
        delivered_at = time.monotonic()
        unexpected = sum(1 for c in clients for a in c.attempts if a.status not in (201, 503, None))
        alive = f"{sum(1 for proc in procs.procs.values() if proc.poll() is None)}/{len(procs.procs)}"
        answers = Counter(a.status for c in clients for a in c.attempts)
        orders_made = Order.objects.count()
    return {
        "first_order_after_promotion_s": min(a.at for a in accepted() if a.at > promoted_at) - promoted_at,
        # never back at full speed: infinitely long
        "full_speed_after_promotion_s": (full_speed_at(accepted(), since=promoted_at, rate=rate_before)
                                         or math.inf) - promoted_at,
        "all_delivered_after_promotion_s": delivered_at - promoted_at,
        "no_primary_s": promoted_at - killed_at,
        "orders_per_s_before": rate_before,
        "orders_accepted": len(placed),
        "orders_made": orders_made,
        "answers_503": answers.get(503, 0),
        "no_answer": answers.get(None, 0),
        "answers_other": unexpected,
        "gave_up": sum(len(c.gave_up) for c in clients),
        "processes_alive_at_end": alive,
    }


def _answers(base: str) -> bool:
    try:
        return requests.get(f"{base}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def run(repeats: int = REPEATS) -> dict:
    port = _free_ports(3)
    pair, lone = Pair(port), Lone(port + 2)
    pipeline: dict[str, list[dict]] = {"no_standby": [], "sync_standby": []}
    try:
        urls = {"no_standby": lone.start(), "sync_standby": pair.start()}
        for _ in range(repeats):
            for name, url in urls.items():
                with database_at(url):
                    pipeline[name].append(pipeline_bench.one_run(orders=PIPELINE_ORDERS))
    finally:
        lone.destroy()
        pair.destroy()
    failovers = []
    for _ in range(repeats):
        try:
            with database_at(pair.start()):
                failovers.append(failover_one_run(pair))
        finally:
            pair.destroy()
    no_standby = _median([r["orders_per_s"] for r in pipeline["no_standby"]])
    sync_standby = _median([r["orders_per_s"] for r in pipeline["sync_standby"]])
    figures = {
        "failover_first_order_after_promotion_s": round(_median(
            [r["first_order_after_promotion_s"] for r in failovers]), 2),
        "failover_full_speed_after_promotion_s": round(_median(
            [r["full_speed_after_promotion_s"] for r in failovers]), 2),
        "failover_all_delivered_after_promotion_s": round(_median(
            [r["all_delivered_after_promotion_s"] for r in failovers]), 2),
        "failover_no_primary_s": round(_median([r["no_primary_s"] for r in failovers]), 2),
        "failover_orders_lost": sum(r["orders_accepted"] - r["orders_made"] for r in failovers),
        "failover_answers_other_than_201_503": sum(r["answers_other"] for r in failovers),
        "failover_how": (f"{CLIENTS} clients placing orders one after another (Idempotency-Key, 503 retried "
                         f"with the same key every 0.2 s); after {BEFORE} accepted, kill -9 of the primary's "
                         f"postmaster and backends, {DOWN_SECONDS} s later pg_ctl promote of the synchronous "
                         f"standby; full speed: 5 orders in a row at >= 0.8 x the rate before; median of "
                         f"{len(failovers)}"),
        "failover_runs": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()} for r in failovers],
        "pipeline_orders_per_s_no_standby": round(no_standby, 2),
        "pipeline_orders_per_s_sync_standby": round(sync_standby, 2),
        "pipeline_sync_standby_ratio": round(sync_standby / no_standby, 3),
        "pipeline_how": (f"pipeline_bench.one_run, {PIPELINE_ORDERS} orders, {pipeline_bench.CLIENTS} clients, "
                         f"SIM_TIME_SCALE={pipeline_bench.TIME_SCALE}, on a lone primary and on a primary with a "
                         f"synchronous standby (both over TCP, same server options), in turns; median of {repeats}"),
        "pipeline_runs": {name: [{k: v for k, v in r.items() if isinstance(v, int | float)} for r in runs]
                          for name, runs in pipeline.items()},
        "failover_measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _results_update(figures)
    return {k: v for k, v in figures.items() if not k.endswith(("_runs", "_how"))}


def _results_update(figures: dict) -> Path:
    """ha.json with this benchmark's keys replaced and every other key kept."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "ha.json"
    document = json.loads(path.read_text()) if path.exists() else {}
    document.update(figures)
    document.setdefault("machine", {"cpus": os.cpu_count()})
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

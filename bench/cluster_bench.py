"""cluster.json: the relay's throughput and commit -> consume latency on a three-node RabbitMQ
cluster (quorum queues replicated on all three) beside a single node (quorum queues with one
member), same run, taken in turns (single, cluster, single, cluster, ...) so that the machine's
drift falls on both alike.

Both brokers are started here with scripts/rabbitmq_cluster.sh, on ports of their own beside
any broker already running, and destroyed at the end. The figures come from the relay and the
latency benchmarks' own code (``relay_drain_msgs_per_s``, ``latency_bench.one_run``), run
against each broker in turn: RABBITMQ_URL names the one node, or the three.

On one machine the three nodes share its cores with the relay, the worker and PostgreSQL:
every message is written three times by the same CPUs, which is the cost a real cluster pays
in network round trips and its own machines instead.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from bench import latency_bench
from bench.common import ROOT, broker_reset, database_reset, median_of, write_result
from bench.relay_bench import ROWS, relay_drain_msgs_per_s

SCRIPT = ROOT / "scripts" / "rabbitmq_cluster.sh"
BROKERS = {"single_node": {"CLUSTER_NAME": "bench1", "CLUSTER_NODES": "1", "CLUSTER_PORT": "5691"},
           "three_nodes": {"CLUSTER_NAME": "bench3", "CLUSTER_NODES": "3", "CLUSTER_PORT": "5695"}}


def _script(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(SCRIPT), *args], env={**os.environ, **env}, capture_output=True, text=True,
                            timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmq_cluster.sh {' '.join(args)}: {result.stderr[-2000:]}")
    return result.stdout.strip()


def _use(url: str) -> None:
    """This process and the processes it starts from now on use the broker at ``url``."""
    from django.conf import settings

    settings.RABBITMQ_URL = url
    os.environ["RABBITMQ_URL"] = url


def one_run(url: str) -> dict:
    _use(url)
    broker_reset()
    database_reset()
    relay = relay_drain_msgs_per_s(ROWS)
    latency = latency_bench.one_run()
    return {"relay_msgs_per_s": relay, **latency}


def run(repeats: int = 3) -> dict:
    from django.conf import settings

    before = settings.RABBITMQ_URL, os.environ.get("RABBITMQ_URL")
    urls = {}
    try:
        for name, env in BROKERS.items():
            _script(env, "destroy")
            urls[name] = _script(env, "start")
        runs: dict[str, list[dict]] = {name: [] for name in BROKERS}
        for _ in range(repeats):
            for name in BROKERS:
                runs[name].append(one_run(urls[name]))
        database_reset()
    finally:
        for env in BROKERS.values():
            _script(env, "destroy")
        settings.RABBITMQ_URL = before[0]
        if before[1] is None:
            os.environ.pop("RABBITMQ_URL", None)
        else:
            os.environ["RABBITMQ_URL"] = before[1]
    keys = ("relay_msgs_per_s", "commit_to_consume_p50_ms", "commit_to_consume_p99_ms")
    figures: dict[str, Any] = {
        "messages_per_relay_run": ROWS,
        "messages_per_latency_run": latency_bench.MESSAGES,
        "latency_rate_per_s": latency_bench.RATE_PER_S,
        **{name: {key: round(median_of(runs[name], key), 2 if key.endswith("_ms") else None) for key in keys}
           for name in BROKERS},
    }
    single, three = figures["single_node"], figures["three_nodes"]
    figures["three_nodes_relay_ratio_to_single"] = round(three["relay_msgs_per_s"] / single["relay_msgs_per_s"], 3)
    write_result("cluster", figures, [{"broker": name, **r} for name in BROKERS for r in runs[name]])
    return figures

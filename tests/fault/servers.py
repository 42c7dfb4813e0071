"""Servers the fault tests start, stop, kill and pause themselves: RabbitMQ nodes
(scripts/rabbitmq_cluster.sh) and a PostgreSQL cluster (scripts/ensure_postgres.sh), each on
ports of its own and in a folder under .run/ (ignored by git). A broker or a database that was
running before the tests is never touched by them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.harness import ROOT, XDIST_WORKER

CLUSTER_SCRIPT = ROOT / "scripts" / "rabbitmq_cluster.sh"
POSTGRES_SCRIPT = ROOT / "scripts" / "ensure_postgres.sh"
PG_HA_SCRIPT = ROOT / "scripts" / "pg_ha.sh"
XDIST_INDEX = int(XDIST_WORKER[2:]) if XDIST_WORKER.startswith("gw") else 0


def rabbitmq_installed() -> bool:
    return Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server") is not None


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_run(count: int, *, offsets: tuple[int, ...] = (0,), start: int = 21000, stop: int = 29000) -> int:
    """The first port P from ``start`` such that P..P+count-1 are free, each also at every offset.

    Each pytest-xdist worker looks from a point of its own in the range (gw1 16 runs further than
    gw0, ...), so that two workers asking at the same moment do not both take the same free port."""
    runs = range(start, stop, count)
    shift = (16 * XDIST_INDEX) % len(runs)
    for port in [*runs[shift:], *runs[:shift]]:
        if all(_free(port + i + offset) for i in range(count) for offset in offsets):
            return port
    raise RuntimeError(f"no {count} free ports between {start} and {stop}")


def database_migrated(url: str) -> str:
    """The database that ``url`` names created (unless it exists) and migrated (``manage.py
    migrate``); returns ``url``. libpq reads the URL: a socket folder or several hosts."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"],
                            env={**os.environ, "DATABASE_URL": url}, cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return url


@dataclass
class RabbitCluster:
    """RabbitMQ nodes of the tests' own (``scripts/rabbitmq_cluster.sh``)."""

    name: str
    nodes: int
    port: int

    @classmethod
    def start(cls, *, nodes: int) -> RabbitCluster:
        port = free_port_run(nodes, offsets=(0, 20000))  # AMQP and Erlang distribution ports
        cluster = cls(name=f"test{os.getpid()}n{nodes}", nodes=nodes, port=port)
        cluster.script("destroy")  # a folder left by an earlier run of the same pid
        cluster.script("start", timeout=300)
        return cluster

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CLUSTER_NAME": self.name, "CLUSTER_NODES": str(self.nodes),
                "CLUSTER_PORT": str(self.port)}

    def script(self, *args: str, timeout: float = 180) -> str:
        result = subprocess.run([str(CLUSTER_SCRIPT), *args], env=self.env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmq_cluster.sh {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout.strip()

    @property
    def url(self) -> str:
        return self.script("url")

    def node_name(self, index: int) -> str:
        return f"{self.name}-{index}@localhost"

    def pid(self, index: int) -> int:
        return int(self.script("pid", str(index)))

    def ctl(self, index: int, *args: str, timeout: float = 120) -> str:
        return self.script("ctl", str(index), *args, timeout=timeout)

    def kill(self, index: int) -> None:
        self.script("kill-node", str(index))

    def start_node(self, index: int) -> None:
        self.script("start-node", str(index), timeout=300)

    def pause(self, index: int) -> int:
        pid = self.pid(index)
        os.kill(pid, signal.SIGSTOP)
        return pid

    @staticmethod
    def resume(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)

    def leaders(self, *, via: int = 1) -> Counter:
        """{node index: quorum queues it leads} (asked of node ``via``)."""
        listed = json.loads(self.ctl(via, "-q", "list_queues", "name", "leader", "--formatter", "json") or "[]")
        names = {self.node_name(i): i for i in range(1, self.nodes + 1)}
        return Counter(names.get(row.get("leader"), 0) for row in listed)

    def running(self) -> list[int]:
        return [i for i, line in enumerate(self.script("status").splitlines(), start=1) if line.endswith(" running")]

    def destroy(self) -> None:
        self.script("destroy")


def _postgres_may_use(folder: Path) -> bool:
    """PostgreSQL runs as the postgres user when the tests run as root: can it reach ``folder``?"""
    return os.getuid() != 0 or subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(folder)],
                                              capture_output=True, check=False).returncode == 0


@dataclass
class PostgresPair:
    """A PostgreSQL primary and its synchronous standby of the tests' own (``scripts/pg_ha.sh``),
    in .run/pg-ha-fault-<pid> on two ports of their own."""

    folder: Path
    port: int

    @classmethod
    def start(cls) -> PostgresPair:
        port = free_port_run(2, start=56100, stop=57000)
        folder = ROOT / ".run" / f"pg-ha-fault-{os.getpid()}"
        if not _postgres_may_use(ROOT):
            folder = Path("/var/tmp") / f"logistics-pg-ha-fault-{os.getpid()}"  # noqa: S108 - as below, named by pid
        pair = cls(folder=folder, port=port)
        pair.script("destroy")  # a folder left by an earlier run of the same pid
        pair.script("start", timeout=300)
        return pair

    def script(self, *args: str, timeout: float = 120) -> str:
        env = {**os.environ, "PG_HA_DIR": str(self.folder), "PG_HA_PORT": str(self.port)}
        result = subprocess.run([str(PG_HA_SCRIPT), *args], env=env, capture_output=True, text=True,
                                timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"pg_ha.sh {' '.join(args)}: {result.stderr[-2000:]}")
        return result.stdout.strip()

    @property
    def url(self) -> str:
        """Both servers, in libpq's form (target_session_attrs=read-write)."""
        return self.script("url")

    def kill(self, node: str) -> int:
        """kill -9 of ``node``'s postmaster and its backends, all at once; returns the postmaster's pid."""
        return int(self.script("kill", node))

    def promote(self) -> None:
        self.script("promote")

    def status(self) -> str:
        return self.script("status")

    def destroy(self) -> None:
        self.script("destroy")


@dataclass
class Postgres:
    """A PostgreSQL cluster of the tests' own, in .run/pg-fault-<pid> on a port of its own."""

    data: Path
    port: int
    url: str

    @classmethod
    def start(cls) -> Postgres:
        port = free_port_run(1, start=56000, stop=57000)
        data = ROOT / ".run" / f"pg-fault-{os.getpid()}"
        if not _postgres_may_use(ROOT):
            # PostgreSQL runs as the postgres user, who cannot reach a checkout under /root
            data = Path("/var/tmp") / f"logistics-pg-fault-{os.getpid()}"  # noqa: S108 - outside /root, named by pid
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        result = subprocess.run([str(POSTGRES_SCRIPT)], env={**env, "PG_PORT": str(port), "PG_DATA": str(data)},
                                capture_output=True, text=True, timeout=180, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ensure_postgres.sh: {result.stderr[-2000:]}")
        return cls(data=data, port=port, url=result.stdout.strip())

    def database_migrated(self) -> str:
        """The database of ``url`` created and migrated (``manage.py migrate``); returns ``url``."""
        return database_migrated(self.url)

    def pg_ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        bin_dir = next(Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        return subprocess.run([*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(self.data), *args],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def restart_fast(self) -> None:
        result = self.pg_ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", str(self.data / "server.log"))
        assert result.returncode == 0, result.stderr

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().splitlines()[0])

    def kill_postmaster(self) -> int:
        pid = self.postmaster_pid()
        os.kill(pid, signal.SIGKILL)
        return pid

    def start_again(self, *, timeout: float = 60) -> None:
        """Start it as it was started first (scripts/ensure_postgres.sh). After a kill -9 of the
        postmaster its backends still hold the shared memory for a moment: start refuses until
        they have gone, so ask again."""
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        deadline = time.monotonic() + timeout
        while True:
            result = subprocess.run([str(POSTGRES_SCRIPT)], env={**env, "PG_PORT": str(self.port),
                                                                 "PG_DATA": str(self.data)},
                                    capture_output=True, text=True, timeout=180, check=False)
            if result.returncode == 0:
                return
            assert time.monotonic() < deadline, result.stderr[-2000:]
            time.sleep(0.5)

    def destroy(self) -> None:
        self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.data, ignore_errors=True)

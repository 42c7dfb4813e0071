"""Real processes for end-to-end and fault tests: the relay, the queue workers and qcluster.

They run ``manage.py`` against the test database (committed data, so tests using them take
the ``transactional_db`` fixture) and the real RabbitMQ.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".run" / "test-logs"

WORKERS = {
    "relay": ["relay_outbox"],
    "new_orders": ["consume", "new_orders"],
    "order_confirmations": ["consume", "order_confirmations"],
    "shipping_orders": ["consume", "shipping_orders"],
    "delivery_updates": ["consume", "delivery_updates"],
    "customer_notifications": ["consume", "customer_notifications"],
    "scheduler": ["qcluster"],
}


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("end-to-end tests run on PostgreSQL (make test provides it)")
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    return f"postgres://{s['USER']}{password}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class System:
    """Start, kill and restart the system's worker processes."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SIM_TIME_SCALE": "0",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "Q_WORKERS": "2",
            **(env or {}),
        }
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.restarts = 0

    def start(self, name: str, *, count: int = 1) -> None:
        args = WORKERS[name.split("#")[0]]
        for _ in range(count):
            index = len(self.procs.get(name, []))
            log = open(LOG_DIR / f"{name}-{index}.log", "ab")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *args],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()
            self.procs.setdefault(name, []).append(proc)

    def start_all(self, names: Iterable[str] = WORKERS) -> None:
        for name in names:
            self.start(name)

    def alive(self, name: str) -> list[subprocess.Popen]:
        return [p for p in self.procs.get(name, []) if p.poll() is None]

    def kill(self, name: str, *, sig: int = signal.SIGKILL) -> int:
        """Kill every process of ``name`` (their whole process group); returns how many."""
        killed = 0
        for proc in self.alive(name):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                continue
            killed += 1
        for proc in self.procs.get(name, []):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs[name] = []
        return killed

    def restart(self, name: str) -> None:
        count = max(1, len(self.procs.get(name, [])))
        self.kill(name)
        self.start(name, count=count)
        self.restarts += 1

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, sig=signal.SIGTERM)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(LOG_DIR.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

"""The harness stops what it started when its run is ended from outside: a ``make test`` ended
by SIGTERM (a timeout, SIGTERM to make) leaves no relay, worker or web server behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import harness
from tests.fault.servers import free_port_run
from tests.harness import ROOT, wait_until

# A test run in miniature: the harness started as tests/conftest.py starts it, three of the
# system's processes (gunicorn with workers of its own among them), then nothing but waiting.
CHILD = """
import sys, time
import django
django.setup()
from tests.harness import System, stop_on_signals
stop_on_signals()
system = System(log_dir=sys.argv[1])
system.start("relay")
system.start("new_orders")
system.start("web")
print(" ".join(str(proc.pid) for procs in system.procs.values() for proc in procs), flush=True)
while True:
    time.sleep(1)
"""


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*/children"):
            try:
                children = {int(child) for child in task.read_text().split()}
            except OSError:
                continue
            todo += children - found
            found |= children
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in {"Z", "X"}  # a zombie has ended; only its parent's wait is missing


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_run_ended_by_a_signal_stops_every_process_it_started(transactional_db, broker, tmp_path, sig):
    # given: a process running the harness, with the relay, a queue worker and the web started
    port = free_port_run(1, start=38000, stop=39000)
    env = {**os.environ, "DATABASE_URL": harness.test_database_url(), "WEB_PORT": str(port), "WEB_WORKERS": "2"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = [int(pid) for pid in child.stdout.readline().split()]
        assert len(started) == 3, child.stderr.read()
        # (gunicorn's master and its two workers up)
        wait_until(lambda: all(running(pid) for pid in started) and len(descendants(started[2])) >= 2,
                   timeout=60, what="the relay, the worker and gunicorn's workers running")
        everything = {*started, *(pid for parent in started for pid in descendants(parent))}

        # when
        child.send_signal(sig)

        # then: the harness's process ends, and every process it started is gone within seconds
        child.wait(timeout=30)
        t0 = time.monotonic()
        wait_until(lambda: not any(running(pid) for pid in everything), timeout=15,
                   what="every process the harness started gone")
        print(f"\n[{signal.Signals(sig).name}] {len(everything)} processes gone "
              f"{time.monotonic() - t0:.2f}s after the harness's process ended")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

"""Real processes for end-to-end and fault tests: the relay, the queue workers and qcluster.

They run ``manage.py`` against the test database (committed data, so tests using them take
the ``transactional_db`` fixture) and the real RabbitMQ.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, urlencode

from django.db import connection
from honcho.environ import parse_procfile

from simulation.processes import procfile_commands

ROOT = Path(__file__).resolve().parent.parent
# pytest-xdist's worker (gw0, gw1, ...) running this process, "" without xdist
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# each xdist worker its own: a session starting empties it
LOG_DIR = ROOT / ".run" / ("test-logs" + (f"-{XDIST_WORKER}" if XDIST_WORKER else ""))

WORKERS = {
    "relay": ["relay_outbox"],
    "new_orders": ["consume", "new_orders"],
    "order_confirmations": ["consume", "order_confirmations"],
    "shipping_orders": ["consume", "shipping_orders"],
    "delivery_updates": ["consume", "delivery_updates"],
    "customer_notifications": ["consume", "customer_notifications"],
    "payment_requests": ["consume", "payment_requests"],
    "payment_results": ["consume", "payment_results"],
    "fulfilment_requests": ["consume", "fulfilment_requests"],
    "support_requests": ["consume", "support_requests"],
    "sim_actors": ["consume", "sim_actors"],
    "scheduler": ["qcluster"],
}
# What the test database's URL carries on to the processes started (libpq's, from DATABASE_URL)
LIBPQ_URL_OPTIONS = ("target_session_attrs", "connect_timeout", "sslmode", "application_name")
# Started as they are deployed (Procfile), not through manage.py; WEB_PORT chooses the port.
PROGRAMS = {
    "web": ["-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "config.wsgi:application"],
    # the Procfile's worker line: one process consuming every product queue, as deployed (not
    # among start_all()'s, which starts a worker per queue)
    "worker": [str(ROOT / "manage.py"), *procfile_commands(ROOT / "Procfile")["worker"].split()[2:]],
}


ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def procfile_processes(path: Path) -> dict[str, tuple[dict[str, str], list[str]]]:
    """A Procfile's processes as honcho starts them: name -> (the line's leading ``VAR=value``
    assignments, the command's arguments after the interpreter). ``python`` and ``gunicorn``
    become this interpreter (``sys.executable``, ``sys.executable -m gunicorn``)."""
    processes = {}
    for name, line in parse_procfile(path.read_text()).processes.items():
        words = shlex.split(line)
        env = {}
        while words and (assignment := ASSIGNMENT.match(words[0])):
            variable, value = assignment.groups()
            words.pop(0)
            env[variable] = value
        program, *args = words
        if program == "python":
            command = args
        elif program == "gunicorn":
            command = ["-m", "gunicorn", *args]
        else:
            raise ValueError(f"{path.name}: {name} runs {program}, which tests cannot start")
        processes[name] = (env, command)
    return processes


def test_database_url() -> str:
    s = connection.settings_dict
    if connection.vendor != "postgresql":
        raise RuntimeError("end-to-end tests run on PostgreSQL (make test provides it)")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    hosts, ports = s["HOST"].split(","), str(s["PORT"]).split(",")
    ports = ports * len(hosts) if len(ports) == 1 else ports
    # a socket folder is a path; several hosts (a primary and its standbys) keep libpq's options
    netloc = ",".join(f"{quote(host, safe='')}:{port}" if port else quote(host, safe="")
                      for host, port in zip(hosts, ports, strict=True))
    options = {key: s["OPTIONS"][key] for key in LIBPQ_URL_OPTIONS if key in s["OPTIONS"]}
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{s['USER']}{password}@{netloc}/{s['NAME']}{query}"


class System:
    """Start, kill and restart the system's worker processes.

    ``env`` applies to every process; ``start(..., env=..., args=...)`` adds environment and
    command-line options for the processes of that call only (say FAULT_INJECTION for the queue
    workers, or ``--prefetch 1``); ``replace_dead()`` restarts dead processes with the options
    they were started with. ``log_dir`` keeps one test's logs apart (default: LOG_DIR).
    """

    def __init__(self, *, env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.log_dir = Path(log_dir) if log_dir is not None else LOG_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SIM_TIME_SCALE": "0",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            "Q_WORKERS": "2",
            # Workers killed and restarted for minutes must not turn into payment timeouts (the
            # saga would then fail orders on purpose); the timeout test sets its own.
            "PAYMENT_TIMEOUT_SECONDS": "300",
            **(env or {}),
        }
        self.procs: dict[str, list[subprocess.Popen]] = {}
        self.restarts = 0
        self.commands: dict[str, list[str]] = {}  # a Procfile's processes (start_procfile)
        _SYSTEMS.append(self)

    def start(self, name: str, *, count: int = 1, env: dict[str, str] | None = None,
              args: Iterable[str] = ()) -> list[subprocess.Popen]:
        """Start ``count`` processes of ``name``; ``env``/``args`` are for these processes only."""
        base = name.split("#")[0]
        if base in self.commands:
            command = self.commands[base]
        else:
            command = PROGRAMS[base] if base in PROGRAMS else [str(ROOT / "manage.py"), *WORKERS[base]]
        extra_env = dict(env or {})
        extra_args = list(args)
        started = []
        for _ in range(count):
            index = len(self.procs.get(name, []))
            log = open(self.log_dir / f"{name}-{index}.log", "ab")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                [sys.executable, *command, *extra_args],
                cwd=ROOT, env={**self.env, **extra_env}, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            proc.spec = (extra_env, extra_args)  # type: ignore[attr-defined]  # how replace_dead() starts it again
            self.procs.setdefault(name, []).append(proc)
            started.append(proc)
        return started

    def start_all(self, names: Iterable[str] = tuple(WORKERS)) -> None:
        for name in names:
            self.start(name)

    def start_procfile(self, path: Path, *, skip: Iterable[str] = ()) -> None:
        """Start every process of the Procfile at ``path`` (but those named in ``skip``) as honcho
        would, each with its line's assignments added to the environment."""
        for name, (env, command) in procfile_processes(path).items():
            if name in skip:
                continue
            self.commands[name] = command
            self.start(name, env=env)

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

    def dead(self, name: str) -> list[subprocess.Popen]:
        return [p for p in self.procs.get(name, []) if p.poll() is not None]

    def kill_one(self, proc: subprocess.Popen, *, sig: int = signal.SIGKILL, wait: float = 30) -> int:
        """Signal one process (its process group) and wait for it; returns its exit code."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=10)

    def replace_dead(self, name: str) -> list[subprocess.Popen]:
        """Start a fresh process for every dead one of ``name`` (same env and args).

        Returns the dead processes replaced (their ``returncode`` says how they ended) and
        adds them to ``restarts``.
        """
        replaced = []
        for proc in self.dead(name):
            self.procs[name].remove(proc)
            extra_env, extra_args = getattr(proc, "spec", ({}, []))
            self.start(name, env=extra_env, args=extra_args)
            replaced.append(proc)
            self.restarts += 1
        return replaced

    def respawn(self, name: str, *, env: dict[str, str] | None = None, args: Iterable[str] | None = None,
                sig: int = signal.SIGKILL) -> None:
        """Replace every process of ``name`` by as many new ones started with ``env``/``args``
        (default: those of the processes replaced)."""
        old = self.procs.get(name, [])
        count = max(1, len(old))
        spec_env, spec_args = getattr(old[0], "spec", ({}, [])) if old else ({}, [])
        self.kill(name, sig=sig)
        self.start(name, count=count, env=spec_env if env is None else env,
                   args=spec_args if args is None else args)

    def restart(self, name: str) -> None:
        count = max(1, len(self.procs.get(name, [])))
        self.kill(name)
        self.start(name, count=count)
        self.restarts += 1

    def stop_all(self, *, timeout: float = 30) -> None:
        """SIGTERM every process at once, then wait for all (SIGKILL after ``timeout``).

        SIGTERM goes to each started process only, not to its process group: qcluster stops its
        own children, and when they get SIGTERM too its sentinel dies inside a multiprocessing
        wait and qcluster's stop then blocks until SIGKILL.
        """
        procs = [p for name in list(self.procs) for p in self.procs[name]]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs = {}
        with contextlib.suppress(ValueError):
            _SYSTEMS.remove(self)

    def log_tail(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


_SYSTEMS: list[System] = []  # not stopped yet: stop_all() at exit, whatever ends this process


@atexit.register
def _stop_systems() -> None:
    for system in list(_SYSTEMS):
        system.stop_all(timeout=10)


def _interrupted(signum: int, frame) -> None:
    """SIGTERM/SIGHUP end a test run as Ctrl-C does: pytest tears its fixtures down (each System
    stops what it started), and whatever is left stops at exit. Once: a second signal while the
    fixtures are torn down would cut that short (stop_all() ends in SIGKILL after its timeout)."""
    signal.signal(signum, signal.SIG_IGN)
    for child in _children():  # pytest-xdist's workers, when this is the process that leads them
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def _children() -> list[int]:
    """This process's children that share its session: not the Systems' processes (sessions of
    their own, stopped by their System), but an xdist controller's workers."""
    pids = []
    for task in Path("/proc/self/task").glob("*/children"):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in task.read_text().split()]
    own_session = os.getsid(0)
    found = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getsid(pid) == own_session:
                found.append(pid)
    return found


def stop_on_signals() -> None:
    """A run ended by SIGTERM (``make test`` under a timeout, SIGTERM to make) or SIGHUP stops
    every process its Systems started: they run in sessions of their own, out of reach of the
    signals a terminal or ``timeout`` sends to a process group. (Only the main thread may.)"""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupted)


_migrated: set[str] = set()  # the RABBITMQ_URLs whose topology this test session brought up to date


def topology_ready(connection) -> None:
    """The topology declared on ``connection``'s broker; the first time in this session for each
    RABBITMQ_URL, queues an earlier version left there (classic queues) are migrated first."""
    from django.conf import settings

    from messaging import topology

    if settings.RABBITMQ_URL not in _migrated:
        topology.migrate(connection)
        _migrated.add(settings.RABBITMQ_URL)
    topology.declare(connection.channel())


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

"""Plumbing shared by the benchmarks: a database of their own, a clean broker, processes, results."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOGS = ROOT / ".run" / "bench-logs"
# A database of their own (BENCH_DB picks another name, so two benchmark runs can share a server).
BENCH_DB = os.environ.get("BENCH_DB") or "logistics_bench"


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        raise SystemExit("benchmarks run on PostgreSQL: set DATABASE_URL (make bench does)")
    parts = urlparse(base)
    return urlunparse(parts._replace(path=f"/{BENCH_DB}"))


def _database_create(url: str, name: str) -> None:
    """CREATE DATABASE ``name`` on the server of ``url`` unless it exists."""
    import psycopg

    # libpq reads the URL: a socket folder (percent-encoded) or several hosts (the writable one)
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def django_setup() -> None:
    """Point Django at the benchmark database (created and migrated when missing)."""
    url = bench_database_url()
    _database_create(url, BENCH_DB)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # the benchmarks run the demo's world (simulated actors and payment provider), as make bench asks
    os.environ.setdefault("SIM_ACTORS", "1")
    os.environ.setdefault("PAYMENT_PROVIDER", "simulated")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    other_checkout = os.environ.get("BENCH_ROOT")
    if other_checkout:
        # Another version's processes run on this database: its own migrations make the schema.
        subprocess.run([sys.executable, str(Path(other_checkout) / "manage.py"), "migrate", "--noinput", "-v0"],
                       cwd=other_checkout, env=os.environ, check=True)
    else:
        call_command("migrate", verbosity=0, interactive=False)


@contextlib.contextmanager
def database_switched(suffix: str) -> Iterator[None]:
    """Run the block on a second benchmark database, ``BENCH_DB`` + ``suffix`` (created and
    migrated when missing), then come back to ``BENCH_DB``.

    For code running in this process only (every thread's connection is opened afresh on the
    other database; processes started meanwhile would still be given ``DATABASE_URL``).
    """
    from django.core.management import call_command
    from django.db import connections

    name = f"{BENCH_DB}{suffix}"
    _database_create(os.environ["DATABASE_URL"], name)
    default = connections["default"]
    default.close()
    default.settings_dict["NAME"] = name
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield
    finally:
        default.close()
        default.settings_dict["NAME"] = BENCH_DB


def database_reset(*, keep: tuple[str, ...] = ()) -> None:
    """Empty every table of the project (and django-q's) so each run starts alike; ``keep``:
    tables left as they are (the message history, say)."""
    from django.apps import apps
    from django.db import connection

    tables = [m._meta.db_table for m in apps.get_models() if m._meta.app_label in {
        "messaging", "shop", "warehouse", "transport", "support", "django_q", "knox"}
        and m._meta.db_table not in keep]
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
        cursor.execute("DELETE FROM auth_user")


def broker_reset() -> None:
    from messaging import broker, topology

    connection = broker.connect()
    topology.migrate(connection)  # the queues of an earlier version, if any, become quorum queues
    connection.close()
    broker.queues_purge(topology.all_queue_names())


def _die_with_parent() -> None:
    """In a child, before it runs its program: SIGTERM when the benchmark that started it dies,
    even by SIGKILL (Linux's PR_SET_PDEATHSIG; elsewhere nothing)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Processes:
    """Project processes started for a benchmark, stopped at the end: each is the leader of a
    process group of its own (gunicorn's and qcluster's children with it), SIGTERMed, then the
    group SIGKILLed if anything of it is left after STOP_SECONDS."""

    STOP_SECONDS = 15

    def __init__(self, env: dict[str, str] | None = None, cwd: Path = ROOT, logs: Path = LOGS) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING", **(env or {})}
        self.cwd = cwd
        self.logs = logs
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        self.procs[name] = proc
        return proc

    def manage(self, name: str, *args: str) -> subprocess.Popen:
        return self.start(name, [sys.executable, str(ROOT / "manage.py"), *args])

    def stop(self) -> None:
        # Signals held off meanwhile: a second Ctrl-C or SIGTERM must not leave the rest running.
        held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for proc in self.procs.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + self.STOP_SECONDS
            for proc in self.procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                while _group_alive(proc.pid) and time.monotonic() < deadline:  # its children, too
                    time.sleep(0.05)
                if _group_alive(proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.procs.clear()
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP end the benchmark as Ctrl-C does (an exception in the main thread), so
    every ``with Processes()`` and ``finally`` on the way out stops what it started."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)
    # Ctrl-C too, even when started from a shell that made background jobs ignore it
    signal.signal(signal.SIGINT, signal.default_int_handler)


def rss_kib(pid: int) -> int:
    """Resident set size of a process and its children (qcluster forks), in KiB."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far: utime + stime of
    /proc/<pid>/stat, counted in clock ticks (10 ms on most kernels)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # fields 14 and 15 of stat(5)


def cpu_seconds_fine(pid: int) -> float:
    """CPU time a process's live threads have used so far, to the nanosecond (/proc/<pid>/task/*/schedstat).

    For a nearly idle process: ``cpu_seconds`` counts whole ticks, so 20 ms over 20 s reads as
    one, two or three of them. Threads that have exited are not counted: compare two readings
    only across a spell in which the process started none. Falls back to ``cpu_seconds``.
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        return cpu_seconds(pid)
    return total / 1e9 if total else cpu_seconds(pid)


def wait_for(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} (logs in {LOGS})")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def write_result(name: str, figures: dict, runs: list[dict]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    document = {**figures, "runs": runs, "machine": {"cpus": os.cpu_count()},
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path

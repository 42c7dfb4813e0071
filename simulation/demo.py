"""``manage.py demo``: the whole system, the seed scenario's orders, live progress and a verdict.

The demo runs every process of the Procfile as a child (each in its own process group, logs in
``.run/demo-<name>.log``), places SEED_ORDER and DEMO_ORDERS through the HTTP API as a customer,
follows them through GET /api/orders/<id>/ until each one is final, prints a summary and stops
everything it started, on success, on errors and on Ctrl-C alike.

Leftovers of an earlier, interrupted run
-----------------------------------------
The demo uses the normal database (DATABASE_URL, else db.sqlite3), and ``load_demo_data`` puts
the stock back to the seed's figures. Work an interrupted run left in flight would then run
against that fresh stock and a fleet whose "busy" vehicles nobody will ever release, and could
starve the new orders (no free vehicle) or take the seed's laptop. So, after checking that no
worker is attached to the queues (that is, no other copy of the system runs against this broker,
which the reset would break), ``leftovers_discard()`` abandons that work before the system starts:

* purges the five work queues and their retry queues (a retry queue feeds its work queue back
  when its TTL runs out); the dead-letter queues are kept for inspection;
* deletes the timers not yet due (picking, transit stages, payment deadlines): a stage of an
  abandoned shipment would release a vehicle that by then carries one of the new shipments;
* marks every busy vehicle available.

Orders and shipments of the earlier run stay in the database as they were (the demo reports how
many are unfinished); only their in-flight work is gone. Two kinds of earlier work do go on, as
the system would after any restart: outbox rows not yet relayed are relayed, and shipments still
waiting for a vehicle keep their place in line (so they may be served before the demo's).
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections, transaction
from rest_framework.authtoken.models import Token
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from messaging import broker, topology
from messaging.models import OutboxMessage, OutboxPending
from shop.models import Order
from shop.services import customer_create
from simulation.demo_data import CANCELLED_ORDER, DECLINED_ORDER, DEMO_ORDERS, PRODUCTS, SEED_ORDER, VEHICLES
from transport.services import fleet_release_all

BASE_DIR: Path = settings.BASE_DIR
PROCFILE = BASE_DIR / "Procfile"
RUN_DIR = BASE_DIR / ".run"
VENV_BIN = BASE_DIR / ".venv" / "bin"

DEMO_USERNAME = "demo-customer"
ADMIN_USERNAME = "admin"
PREFERRED_PORT = 8000
WEB_READY_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.5
REFRESH_PER_SECOND = 4
HEARTBEAT_SECONDS = 15.0  # plain output: a "still waiting" line this often
DRAIN_SECONDS = 10.0
SHELL_COMPOUND = (";", "&", "|", "(", ")", "`", "\n")  # a Procfile command with these is not exec'd

FINAL_STATUSES = frozenset({"delivered", "rejected", "payment_failed", "cancelled"})
# The django-q functions simulation.clock.step_schedule() schedules.

STATUS_STYLES = {
    "new": "bright_white",
    "confirmed": "cyan",
    "paid": "bright_cyan",
    "picked_up": "blue",
    "in_transit": "magenta",
    "out_for_delivery": "yellow",
    "delivered": "bold green",
    "rejected": "bold red",
    "payment_failed": "bold red",
    "cancelled": "red",
}


class DemoError(Exception):
    """The demo could not run or its scenario did not end as expected."""


class DemoInterrupted(Exception):
    """SIGTERM/SIGHUP arrived: stop like on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


# --- time budget ------------------------------------------------------------------------
def timeout_default() -> float:
    """Seconds the orders get to become final: 180 s at SIM_TIME_SCALE=1, never under 60 s."""
    return 60.0 + 120.0 * settings.SIM_TIME_SCALE


# --- database and broker ----------------------------------------------------------------
def database_and_broker_prepare(console: Console) -> None:
    """migrate, setup_broker, a check that no worker is attached, load_demo_data, leftovers gone."""
    _command_quiet("migrate", interactive=False)
    console.print(f"[green]✓[/] database migrated ({_database_label()})")
    _command_quiet("setup_broker")
    console.print("[green]✓[/] RabbitMQ topology declared")
    broker_idle_check()
    _command_quiet("load_demo_data")
    console.print(f"[green]✓[/] demo data loaded: {len(PRODUCTS)} products at seed stock "
                  f"({', '.join(f'{sku} {stock}' for sku, _n, _p, _l, stock in PRODUCTS)}), {len(VEHICLES)} vehicles")
    leftovers = leftovers_discard()
    console.print(f"[green]✓[/] leftovers of earlier runs discarded: {leftovers.describe()}")


def _command_quiet(name: str, **options: Any) -> None:
    out = io.StringIO()
    call_command(name, stdout=out, stderr=out, verbosity=1, **options)


def _database_label() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"SQLite {db['NAME']}"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or 'localhost'}/{db['NAME']}"


def broker_idle_check() -> None:
    """Refuse to go on while workers consume the work queues: another copy of the system runs."""
    try:
        depths = broker.queue_depths(list(topology.work_queues()))
    except Exception as exc:  # pika raises many unrelated types for an unreachable broker
        raise DemoError(f"RabbitMQ is not reachable at RABBITMQ_URL: {exc!r}") from exc
    busy = {name: found[1] for name, found in depths.items() if found is not None and found[1] > 0}
    if busy:
        listing = ", ".join(f"{name} ({count} consumer{'s' * (count != 1)})" for name, count in busy.items())
        raise DemoError(
            f"another copy of the system is consuming from this broker: {listing}. "
            "Stop it (make run, tests, ...) first, or point RABBITMQ_URL at another broker or vhost."
        )


@dataclass(frozen=True)
class Leftovers:
    messages_purged: int
    steps_discarded: int
    vehicles_freed: int
    orders_unfinished: int

    def describe(self) -> str:
        text = (f"{self.messages_purged} queued messages, {self.steps_discarded} pending timers, "
                f"{self.vehicles_freed} busy vehicles freed")
        if self.orders_unfinished:
            text += f"; {self.orders_unfinished} earlier orders stay unfinished"
        return text


def leftovers_discard() -> Leftovers:
    """Abandon the in-flight work of earlier runs (see the module docstring). The system is down."""
    purged = broker.queues_purge([q for q in topology.all_queue_names() if not q.endswith(".dlq")])
    with transaction.atomic():
        # timers not due yet (a picking, a stage, a payment deadline of an abandoned order)
        steps, _ = OutboxMessage.objects.filter(published_at__isnull=True, due_at__isnull=False).delete()
        freed = fleet_release_all()
    unfinished = Order.objects.exclude(status__in=FINAL_STATUSES).count()
    return Leftovers(messages_purged=purged, steps_discarded=steps, vehicles_freed=freed,
                     orders_unfinished=unfinished)


# --- accounts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class DemoAccounts:
    customer_username: str
    customer_token: str
    customer_created: bool
    admin_username: str
    admin_password: str | None  # None: the admin existed, its password is unchanged


def accounts_ensure() -> DemoAccounts:
    token, created = customer_ensure(DEMO_USERNAME)
    return DemoAccounts(
        customer_username=DEMO_USERNAME, customer_token=token, customer_created=created,
        admin_username=ADMIN_USERNAME, admin_password=admin_ensure(ADMIN_USERNAME),
    )


def customer_ensure(username: str) -> tuple[str, bool]:
    """The demo customer's API token, creating the account on first use. Returns (key, created)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        _customer, key = customer_create(username=username, email=f"{username}@example.com", name="Demo customer")
        return key, True
    return Token.objects.get_or_create(user=user)[0].key, False


def admin_ensure(username: str) -> str | None:
    """A superuser with a random password when there is none; None when it already exists."""
    User = get_user_model()
    if User.objects.filter(username=username).exists():
        return None
    password = secrets.token_urlsafe(12)
    User.objects.create_superuser(username=username, email=f"{username}@example.com", password=password)
    return password


# --- processes --------------------------------------------------------------------------
def procfile_read(path: Path = PROCFILE) -> list[tuple[str, str]]:
    """The ``name: command`` lines of a Procfile, in order."""
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not name or not command or not name.replace("_", "").replace("-", "").isalnum():
            raise DemoError(f"{path}:{number}: not a 'name: command' line: {raw!r}")
        if any(name == seen for seen, _ in entries):
            raise DemoError(f"{path}:{number}: process {name!r} defined twice")
        entries.append((name, command))
    if not entries:
        raise DemoError(f"{path} defines no process")
    return entries


def port_pick(preferred: int = PREFERRED_PORT) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver binds
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise DemoError("no free TCP port on 127.0.0.1")


@dataclass
class Process:
    name: str
    command: str
    popen: subprocess.Popen
    log_path: Path

    def exited(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text)


@dataclass
class System:
    """The processes of one demo run, and where they answer."""

    port: int
    log_dir: Path = RUN_DIR
    processes: list[Process] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_glob(self) -> str:
        return str(self.log_dir / "demo-*.log")

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)

    def dead_check(self) -> None:
        """Raise DemoError naming the first process that has exited."""
        for proc in self.processes:
            code = proc.exited()
            if code is not None:
                raise DemoError(
                    f"process {proc.name!r} ({proc.command}) exited with code {code}; "
                    f"last lines of {proc.log_path}:\n{proc.log_tail()}"
                )


def system_env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "WEB_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", os.defpath)]),
    }


def system_start(system: System, entries: Sequence[tuple[str, str]]) -> None:
    """Start every entry with ``sh -c`` in its own process group; ``system`` lists each at once.

    A simple command is run as ``exec <command>`` so the process the Procfile names leads its
    group and receives the stop signal itself (see system_stop()).
    """
    system.log_dir.mkdir(parents=True, exist_ok=True)
    connections.close_all()  # no connection of ours held open beside the workers
    env = system_env(system.port)
    for name, command in entries:
        log_path = system.log_dir / f"demo-{name}.log"
        script = command if any(c in command for c in SHELL_COMPOUND) else f"exec {command}"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                ["sh", "-c", script], cwd=BASE_DIR, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        system.processes.append(Process(name=name, command=command, popen=popen, log_path=log_path))


def web_wait(system: System, *, timeout: float = WEB_READY_SECONDS) -> None:
    """Until GET /api/schema/ answers 200; DemoError on timeout or when a process dies first."""
    url = f"{system.base_url}/api/schema/"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with _http_session() as session:
        while time.monotonic() < deadline:
            system.dead_check()
            try:
                response = session.get(url, timeout=5)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            time.sleep(0.25)
    web = system.process("web")
    where = f"; see {web.log_path}:\n{web.log_tail()}" if web else ""
    raise DemoError(f"the web server did not answer GET {url} with 200 within {timeout:.0f} s ({last}){where}")


def system_stop(system: System, *, grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop every process group; SIGKILL what is left after ``grace`` s. Returns the killed names.

    SIGTERM goes to each group's leader first, and to the rest of its group once the leader is
    gone. Not to the whole group at once: qcluster's sentinel (django-q2) takes SIGTERM with the
    default action, and killed while it holds the cluster's shared stop Event lock it leaves the
    qcluster main process blocked for good in ``stop_event.set()`` (4 of 5 tries here). Told
    alone, qcluster stops its sentinel and workers itself in under a second.

    Ctrl-C and SIGTERM are ignored meanwhile so a second one cannot leave processes behind.
    """
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for proc in system.processes:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        told_group: set[int] = set()
        while time.monotonic() < deadline:
            alive = [p for p in system.processes if _group_alive(p)]
            if not alive:
                break
            for proc in alive:
                if proc.popen.poll() is not None and proc.popen.pid not in told_group:
                    _group_signal(proc.popen.pid, signal.SIGTERM)  # the leader left members behind
                    told_group.add(proc.popen.pid)
            time.sleep(0.1)
        killed = []
        for proc in system.processes:
            if _group_alive(proc):
                _group_signal(proc.popen.pid, signal.SIGKILL)
                killed.append(proc.name)
        for proc in system.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=5)
        return killed
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _group_signal(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(proc: Process) -> bool:
    """Whether any live (non-zombie) process remains in the group the process leads."""
    proc.popen.poll()  # reap the leader
    pgid = proc.popen.pid
    proc_root = Path("/proc")
    if not proc_root.is_dir():  # not Linux: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_root.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise DemoInterrupted, so the finally blocks stop the system."""

    def handler(signum: int, _frame: Any) -> None:
        raise DemoInterrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# --- orders -----------------------------------------------------------------------------
@dataclass
class TrackedOrder:
    """One order of the scenario as the API last showed it."""

    order_id: str
    customer: str
    items: str
    total: str
    currency: str
    is_seed: bool
    over_stock: bool  # asks for more of a product than the seed stocks: must be rejected
    placed_at: float  # time.monotonic()
    expected: str = "delivered"  # how the scenario means it to end
    payment_status: str = ""
    payment_message: str = ""
    compensation: str = ""
    status: str = "new"
    warehouse_message: str = ""
    delivery_status: str = ""
    delivery_message: str = ""
    shipment_id: str = ""
    final_seconds: float | None = None  # created_at to the final status change, by the server's clock

    @property
    def short_id(self) -> str:
        return self.order_id[:8]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def elapsed(self, now: float) -> float:
        return self.final_seconds if self.final_seconds is not None else now - self.placed_at

    def describe(self) -> str:
        if self.status == "rejected":
            return self.warehouse_message
        if self.status in ("payment_failed", "cancelled"):
            return self.payment_message or self.status
        if self.delivery_status:
            return f"{self.delivery_status}: {self.delivery_message}"
        return self.warehouse_message

    def snapshot(self) -> tuple[str, str]:
        return self.status, self.delivery_status


def order_over_stock(body: dict) -> bool:
    """Whether the order asks for more of some product than the seed stocks (so it must be rejected)."""
    seed_stock = {sku: stock for sku, _name, _price, _location, stock in PRODUCTS}
    wanted: dict[str, int] = {}
    for item in body["items"]:
        wanted[item["product_id"]] = wanted.get(item["product_id"], 0) + int(item["quantity"])
    return any(quantity > seed_stock.get(sku, 0) for sku, quantity in wanted.items())


def scenario_orders() -> list[dict]:
    """The seed's order first, then the demo's."""
    return [SEED_ORDER, *DEMO_ORDERS]


def _http_session(token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 never through an HTTP(S)_PROXY from the environment
    if token:
        session.headers["Authorization"] = f"Token {token}"
    return session


def api_session(token: str) -> requests.Session:
    return _http_session(token)


def order_expected(body: dict) -> str:
    if order_over_stock(body):
        return "rejected"
    if body is DECLINED_ORDER:
        return "payment_failed"
    if body is CANCELLED_ORDER:
        return "cancelled"
    return "delivered"


def orders_cancel(session: requests.Session, base_url: str, orders: Sequence[TrackedOrder]) -> list[str]:
    """Cancel the orders the scenario cancels (right after placing them, before picking can start)."""
    notes = []
    for order in orders:
        if order.expected != "cancelled":
            continue
        try:
            response = session.post(f"{base_url}/api/orders/{order.order_id}/cancel/", timeout=30)
        except requests.RequestException as exc:
            raise DemoError(f"POST /api/orders/{order.order_id}/cancel/ failed: {exc!r}") from exc
        if response.status_code == 200:
            order_apply(order, response.json())
            notes.append(f"cancelled {order.short_id} ({order.customer})")
        elif response.status_code == 409:
            # Too late (picking began): a legitimate answer; the order is then delivered.
            order.expected = "delivered"
            notes.append(f"cancel of {order.short_id} refused: {response.json().get('detail')}")
        else:
            raise DemoError(f"cancel of {order.order_id} answered {response.status_code}: {response.text[:300]}")
    return notes


def orders_place(session: requests.Session, base_url: str, bodies: Sequence[dict]) -> list[TrackedOrder]:
    """POST every body to /api/orders/, one right after the other."""
    placed: list[TrackedOrder] = []
    for body in bodies:
        try:
            response = session.post(f"{base_url}/api/orders/", json=body, timeout=30)
        except requests.RequestException as exc:
            raise DemoError(f"POST /api/orders/ for {body['customer']['name']} failed: {exc!r}") from exc
        if response.status_code != 201:
            raise DemoError(f"POST /api/orders/ for {body['customer']['name']} answered "
                            f"{response.status_code}: {response.text[:500]}")
        data = response.json()
        order = TrackedOrder(
            order_id=data["order_id"],
            customer=data["customer"]["name"],
            items=", ".join(f"{i['quantity']}× {i['product_id']}" for i in data["items"]),
            total=data["total"],
            currency=data["currency"],
            is_seed=body is SEED_ORDER,
            over_stock=order_over_stock(body),
            placed_at=time.monotonic(),
            expected=order_expected(body),
        )
        order_apply(order, data)
        placed.append(order)
    return placed


def order_apply(order: TrackedOrder, data: dict) -> None:
    """Take an order representation from the API into ``order``."""
    order.status = data["status"]
    order.warehouse_message = (data.get("warehouse_confirmation") or {}).get("message") or ""
    delivery = data.get("delivery_status") or {}
    order.delivery_status = delivery.get("status") or ""
    order.delivery_message = delivery.get("message") or ""
    order.shipment_id = data.get("shipment_id") or ""
    payment = data.get("payment") or {}
    order.payment_status = payment.get("status") or ""
    order.payment_message = payment.get("message") or ""
    if order.is_final and order.final_seconds is None:
        order.final_seconds = _seconds_to_final(data) or (time.monotonic() - order.placed_at)


def _seconds_to_final(data: dict) -> float | None:
    history = data.get("history") or []
    final = [change for change in history if change.get("status") in FINAL_STATUSES]
    if not final or not data.get("created_at"):
        return None
    try:
        return (datetime.fromisoformat(final[-1]["at"]) - datetime.fromisoformat(data["created_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def orders_refresh(session: requests.Session, base_url: str, orders: Sequence[TrackedOrder]) -> list[TrackedOrder]:
    """GET every unfinished order again; returns those whose status or delivery status changed.

    A failed request keeps the last known state (the next poll tries again).
    """
    changed = []
    for order in orders:
        if order.is_final:
            continue
        try:
            response = session.get(f"{base_url}/api/orders/{order.order_id}/", timeout=10)
        except requests.RequestException:
            continue
        if response.status_code != 200:
            continue
        before = order.snapshot()
        order_apply(order, response.json())
        if order.snapshot() != before:
            changed.append(order)
    return changed


# --- progress ---------------------------------------------------------------------------
def _status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def progress_table(orders: Sequence[TrackedOrder], now: float, *, title: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("Order", no_wrap=True)
    table.add_column("Customer", no_wrap=True)
    table.add_column("Items")
    table.add_column("Status", no_wrap=True)
    table.add_column("Delivery / message", overflow="fold")
    table.add_column("Shipment", no_wrap=True)
    table.add_column("Elapsed", justify="right", no_wrap=True)
    for order in orders:
        message = Text(order.describe(), style="red" if order.status == "rejected" else
                       "yellow" if order.delivery_status == "awaiting_vehicle" else "")
        table.add_row(
            order.short_id + (" ★" if order.is_seed else ""),
            order.customer,
            order.items,
            _status_text(order.status),
            message,
            order.shipment_id or "–",
            f"{order.elapsed(now):5.1f}s",
        )
    return table


def _progress_title(orders: Sequence[TrackedOrder], started: float, timeout: float) -> str:
    done = sum(o.is_final for o in orders)
    waiting = sum(o.delivery_status == "awaiting_vehicle" for o in orders if not o.is_final)
    return (f"{done}/{len(orders)} orders final · {waiting} waiting for a vehicle · "
            f"{time.monotonic() - started:.0f}s of {timeout:.0f}s · ★ = the seed's order")


def progress_watch(console: Console, session: requests.Session, system: System,
                   orders: Sequence[TrackedOrder], *, timeout: float) -> bool:
    """Follow the orders until all are final (True) or ``timeout`` s pass (False).

    On a terminal a live table; otherwise one plain line per status change.
    """
    started = time.monotonic()
    deadline = started + timeout
    if console.is_terminal:
        def render() -> Table:
            return progress_table(orders, time.monotonic(), title=_progress_title(orders, started, timeout))

        with Live(render(), console=console, refresh_per_second=REFRESH_PER_SECOND, transient=False) as live:
            while True:
                system.dead_check()
                orders_refresh(session, system.base_url, orders)
                live.update(render())
                if all(o.is_final for o in orders) or time.monotonic() >= deadline:
                    break
                time.sleep(POLL_SECONDS)
            live.update(render(), refresh=True)
    else:
        for order in orders:
            _plain_line(console, order, started)
        heartbeat = started
        while not all(o.is_final for o in orders) and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
            system.dead_check()
            for order in orders_refresh(session, system.base_url, orders):
                _plain_line(console, order, started)
            if time.monotonic() - heartbeat >= HEARTBEAT_SECONDS:
                heartbeat = time.monotonic()
                console.print(f"[{heartbeat - started:6.1f}s] {_progress_title(orders, started, timeout)}",
                              highlight=False)
    return all(o.is_final for o in orders)


def _plain_line(console: Console, order: TrackedOrder, started: float) -> None:
    console.print(
        f"[{time.monotonic() - started:6.1f}s] {order.short_id} {order.customer:<14} "
        f"{order.status:<16} {order.describe()}",
        highlight=False, markup=False, soft_wrap=True,
    )


# --- summary and verdict ----------------------------------------------------------------
def summary_print(console: Console, orders: Sequence[TrackedOrder], accounts: DemoAccounts, system: System) -> None:
    table = Table(title="Summary", title_justify="left")
    table.add_column("Order", no_wrap=True)
    table.add_column("Customer", no_wrap=True)
    table.add_column("Total", justify="right", no_wrap=True)
    table.add_column("Final status", no_wrap=True)
    table.add_column("Shipment", no_wrap=True)
    table.add_column("Compensation")
    table.add_column("Time to final", justify="right", no_wrap=True)
    for order in orders:
        table.add_row(
            order.order_id if console.width >= 140 else order.short_id,
            order.customer + (" ★" if order.is_seed else ""),
            f"{order.total} {order.currency}",
            _status_text(order.status if order.is_final else f"{order.status} (not final)"),
            order.shipment_id or "–",
            order.compensation or "–",
            f"{order.final_seconds:.1f}s" if order.final_seconds is not None else "–",
        )
    console.print(table)

    base = system.base_url
    seed = next((o for o in orders if o.is_seed), None)
    if accounts.admin_password:
        admin = f"user [bold]{accounts.admin_username}[/], password [bold]{accounts.admin_password}[/]"
    else:
        admin = f"existing admin user [bold]{accounts.admin_username}[/] (password unchanged)"
    lines = [
        f"Admin            {base}/admin/  ({admin})",
        f"Orders API       {base}/api/orders/  (header Authorization: Token {accounts.customer_token})",
        f"API docs         {base}/api/docs/",
    ]
    if seed and seed.shipment_id:
        lines += [
            f"Seed tracking    {base}/api/tracking/{seed.shipment_id}/",
            f"Seed track page  {base}/track/{seed.shipment_id}/",
        ]
    dashboard = f"{base}/dashboard/"
    if not _url_exists(dashboard):
        dashboard += "  (not served by this build: 404)"
    lines += [f"Dashboard        {dashboard}", f"Process logs     {system.log_glob}"]
    console.print("\n".join(lines), highlight=False)


def _url_exists(url: str) -> bool:
    with _http_session() as session:
        try:
            return session.get(url, timeout=5, allow_redirects=False).status_code != 404
        except requests.RequestException:
            return False


def compensation_describe(order: TrackedOrder) -> str:
    """What was undone for an order that ended without delivery (read from warehouse and payments)."""
    from payments.selectors import payment_for_order
    from warehouse.selectors import reservation_get

    if order.status not in ("payment_failed", "cancelled"):
        return ""
    parts = []
    reservation = reservation_get(order_id=order.order_id)
    if reservation is not None and reservation.status == "released":
        returned = ", ".join(f"{line.quantity}× {line.stock_item.sku}" for line in reservation.lines.all())
        parts.append(f"stock returned ({returned})" if returned else "nothing was reserved")
    elif reservation is not None:
        parts.append(f"reservation {reservation.status}")
    payment = payment_for_order(order_id=order.order_id)
    if payment is not None:
        parts.append({"declined": "payment declined, nothing charged", "voided": "payment voided before capture",
                      "refunded": f"payment refunded ({payment.refund_reference})"}.get(
                          payment.status, f"payment {payment.status}"))
    return "; ".join(parts)


def compensations_wait(orders: Sequence[TrackedOrder], *, timeout: float = 20.0) -> None:
    """Let the compensations land (they travel after the order turned final), then describe them."""
    deadline = time.monotonic() + timeout
    pending = [o for o in orders if o.status in ("payment_failed", "cancelled")]
    while True:
        for order in pending:
            order.compensation = compensation_describe(order)
        settled = all(o.compensation and "reservation reserved" not in o.compensation
                      and "pending" not in o.compensation for o in pending)
        if settled or time.monotonic() > deadline:
            return
        time.sleep(0.25)


def verdict_problems(orders: Sequence[TrackedOrder]) -> list[str]:
    """Why the run failed; empty when every order ended as the scenario means it to."""
    problems = []
    for order in orders:
        if order.is_final and order.status != order.expected and not order.over_stock and not order.is_seed:
            problems.append(f"order {order.order_id} ({order.customer}) ended {order.status}, "
                            f"expected {order.expected}: {order.describe()}")
        if order.is_final and order.expected in ("payment_failed", "cancelled") and order.status == order.expected \
                and "stock returned" not in order.compensation and "nothing was reserved" not in order.compensation:
            problems.append(f"order {order.order_id} ({order.customer}) ended {order.status} "
                            f"but its stock was not returned: {order.compensation or 'no compensation seen'}")
    for order in orders:
        if not order.is_final:
            where = f", delivery {order.delivery_status}" if order.delivery_status else ""
            problems.append(f"order {order.order_id} ({order.customer}) is stuck in {order.status}{where}")
    seed = next((o for o in orders if o.is_seed), None)
    if seed is None:
        problems.append("the seed's order was not placed")
    elif seed.is_final and seed.status != "delivered":
        problems.append(f"the seed's order {seed.order_id} ended {seed.status}, not delivered: {seed.describe()}")
    over_stock = [o for o in orders if o.over_stock]
    if not over_stock:
        problems.append("no order of the scenario asks for more than the seed's stock (DEMO_ORDERS)")
    for order in over_stock:
        if order.is_final and order.status != "rejected":
            problems.append(f"order {order.order_id} ({order.customer}) asks for more than the stock "
                            f"but ended {order.status}")
    return problems


def system_drain(system: System, *, timeout: float = DRAIN_SECONDS) -> bool:
    """Wait until the outbox is relayed and the work queues are empty (twice in a row).

    The last delivery's customer notification is still travelling when the order shows
    delivered; stopping right then would leave it for the next run to purge.
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        system.dead_check()
        try:
            depths = broker.queue_depths(list(topology.work_queues()))
        except Exception:  # pika raises many unrelated types; the next look tries again
            depths = {"?": None}
        pending = OutboxPending.objects.exists()
        queued = any(found is None or found[0] > 0 for found in depths.values())
        quiet = 0 if pending or queued else quiet + 1
        if quiet >= 2:
            return True
        time.sleep(0.5)
    return False


def system_hold(console: Console, system: System) -> None:
    """--keep-running: wait for Ctrl-C (or a process dying)."""
    console.print(f"\nThe system keeps running at {system.base_url}/ — Ctrl-C stops it.")
    try:
        while True:
            system.dead_check()
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("")


# --- the whole run ----------------------------------------------------------------------
def demo_run(console: Console, *, timeout: float, keep_running: bool = False) -> None:
    """Run the scenario end to end; DemoError says why it did not end as expected."""
    console.rule("[bold]Logistics integration platform — demo")
    database_and_broker_prepare(console)
    accounts = accounts_ensure()
    console.print(f"[green]✓[/] customer [bold]{accounts.customer_username}[/] "
                  f"{'created' if accounts.customer_created else 'reused'}; admin user "
                  f"{'created' if accounts.admin_password else 'exists'}")
    entries = procfile_read()
    system = System(port=port_pick())
    with termination_as_interrupt():
        try:
            system_start(system, entries)
            console.print(f"[green]✓[/] started {len(entries)} processes from the Procfile "
                          f"({', '.join(name for name, _ in entries)}); logs in {system.log_glob}")
            web_wait(system)
            console.print(f"[green]✓[/] web answers at {system.base_url}/  (SIM_TIME_SCALE={settings.SIM_TIME_SCALE:g},"
                          f" timeout {timeout:.0f}s)")
            with api_session(accounts.customer_token) as session:
                orders = orders_place(session, system.base_url, scenario_orders())
                console.print(f"[green]✓[/] placed {len(orders)} orders through POST /api/orders/")
                for note in orders_cancel(session, system.base_url, orders):
                    console.print(f"[green]✓[/] {note} through POST /api/orders/<id>/cancel/")
                all_final = progress_watch(console, session, system, orders, timeout=timeout)
            if not all_final:
                console.print(f"[bold red]timed out after {timeout:.0f}s[/] with orders still in flight")
            elif not system_drain(system):
                console.print(f"[yellow]messages still in flight after {DRAIN_SECONDS:.0f}s[/]")
            compensations_wait(orders)
            summary_print(console, orders, accounts, system)
            problems = verdict_problems(orders)
            if keep_running:
                system_hold(console, system)
        finally:
            console.print(f"stopping {len(system.processes)} processes …")
            stop_started = time.monotonic()
            killed = system_stop(system)
            if killed:
                console.print(f"[yellow]killed after {STOP_GRACE_SECONDS:.0f}s:[/] {', '.join(killed)}")
            else:
                console.print(f"[green]✓[/] every process stopped ({time.monotonic() - stop_started:.1f}s)")
    if problems:
        raise DemoError("the demo did not end as expected:\n  - " + "\n  - ".join(problems)
                        + f"\nlook at the process logs: {system.log_glob}")
    console.print("[bold green]demo passed:[/] every order final, the seed's order delivered, "
                  "the over-stock order rejected, the declined and the cancelled orders compensated")

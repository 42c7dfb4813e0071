"""``manage.py demo``: the whole system, the seed scenario's orders, live progress and a verdict.

The orchestration: prepare the database and the broker, start the Procfile's processes with
honcho (``simulation.processes``), wait until the web answers, run the scenario
(``simulation.scenario``) while the report shows it (``simulation.report``), and stop
everything it started, on success, on errors and on Ctrl-C alike.

Leftovers of an earlier, interrupted run
-----------------------------------------
The demo uses the normal database (DATABASE_URL, else db.sqlite3), and ``load_demo_data`` puts
the stock back to the seed's figures. Work an interrupted run left in flight would then run
against that fresh stock and a fleet whose "busy" vehicles nobody will ever release, and could
starve the new orders (no free vehicle) or take the seed's laptop. So, after checking that no
worker is attached to the queues (that is, no other copy of the system runs against this broker,
which the reset would break), ``leftovers_discard()`` abandons that work before the system starts:
it purges the work queues and their retry queues (the dead-letter queues are kept for
inspection), deletes the timers not yet sent (a stage of an abandoned shipment would release a
vehicle that by then carries one of the new shipments) and marks every busy vehicle available.
Orders of the earlier run stay as they were (the demo says how many are unfinished); outbox rows
not yet relayed are relayed, as after any restart.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from rich.console import Console

from messaging import broker, topology
from messaging.models import OutboxMessage
from shop.models import Order
from simulation import report, scenario
from simulation.demo_data import PRODUCTS, VEHICLES
from simulation.processes import System, SystemStopped, procfile_commands
from transport.services import fleet_release_all

BASE_DIR: Path = settings.BASE_DIR
PROCFILE = BASE_DIR / "Procfile"
RUN_DIR = BASE_DIR / ".run"
PREFERRED_PORT = 8000
WEB_READY_SECONDS = 60.0
POLL_SECONDS = 0.5
DRAIN_SECONDS = 10.0


class DemoError(Exception):
    """The demo could not run or its scenario did not end as expected."""


class DemoInterrupted(Exception):
    """A signal (Ctrl-C, SIGTERM, SIGHUP) stopped the demo."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def timeout_default() -> float:
    """Seconds the orders get to become final: 180 s at SIM_TIME_SCALE=1, never under 60 s."""
    return 60.0 + 120.0 * settings.SIM_TIME_SCALE


# --- before the system starts -----------------------------------------------------------
def database_and_broker_prepare(console: Console) -> None:
    """migrate, setup_broker, a check that no worker is attached, load_demo_data, leftovers gone."""
    _command_quiet("migrate", interactive=False)
    db = settings.DATABASES["default"]
    where = (f"SQLite {db['NAME']}" if db["ENGINE"].endswith("sqlite3")
             else f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or 'localhost'}/{db['NAME']}")
    console.print(f"[green]✓[/] database migrated ({where})")
    _command_quiet("setup_broker", migrate=True)  # an earlier version's classic queues become quorum queues
    console.print("[green]✓[/] RabbitMQ topology declared")
    broker_idle_check()
    _command_quiet("load_demo_data")
    stock = ", ".join(f"{sku} {units}" for sku, _name, _price, _location, units in PRODUCTS)
    console.print(f"[green]✓[/] demo data loaded: {len(PRODUCTS)} products at seed stock ({stock}), "
                  f"{len(VEHICLES)} vehicles")
    console.print(f"[green]✓[/] leftovers of earlier runs discarded: {leftovers_discard().describe()}")


def _command_quiet(name: str, **options: object) -> None:
    out = io.StringIO()
    call_command(name, stdout=out, stderr=out, verbosity=1, **options)


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
    timers_discarded: int
    vehicles_freed: int
    orders_unfinished: int

    def describe(self) -> str:
        text = (f"{self.messages_purged} queued messages, {self.timers_discarded} pending timers, "
                f"{self.vehicles_freed} busy vehicles freed")
        if self.orders_unfinished:
            text += f"; {self.orders_unfinished} earlier orders stay unfinished"
        return text


def leftovers_discard() -> Leftovers:
    """Abandon the in-flight work of earlier runs (see the module docstring). The system is down."""
    dead_letters = {topology.dead_letter_queue(queue) for queue in topology.work_queues()}
    purged = broker.queues_purge([q for q in topology.all_queue_names() if q not in dead_letters])
    with transaction.atomic():
        timers, _ = OutboxMessage.objects.filter(published_at__isnull=True, due_at__isnull=False).delete()
        freed = fleet_release_all()
    unfinished = Order.objects.exclude(status__in=scenario.FINAL_STATUSES).count()
    return Leftovers(messages_purged=purged, timers_discarded=timers, vehicles_freed=freed,
                     orders_unfinished=unfinished)


def port_pick(preferred: int = PREFERRED_PORT) -> int:
    """``preferred`` when it is free on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise DemoError("no free TCP port on 127.0.0.1")


# --- while the system runs --------------------------------------------------------------
def web_wait(system: System, base_url: str) -> None:
    """Until GET /api/schema/ answers 200; DemoError when it does not within WEB_READY_SECONDS."""
    url = f"{base_url}/api/schema/"
    deadline = time.monotonic() + WEB_READY_SECONDS
    last = "no answer yet"
    with scenario.api_session() as session:
        while time.monotonic() < deadline:
            try:
                response = session.get(url, timeout=5)
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            system.wait(0.25)
    raise DemoError(f"the web server did not answer GET {url} with 200 within {WEB_READY_SECONDS:.0f} s ({last}); "
                    f"see {system.log_path('web')}:\n{system.log_tail('web')}")


def system_drain(system: System) -> bool:
    """Until the due outbox rows are relayed and the work queues are empty (twice in a row).

    The last delivery's customer notification is still travelling when the order shows
    delivered; stopping right then would leave it for the next run to purge.
    """
    deadline = time.monotonic() + DRAIN_SECONDS
    quiet = 0
    while time.monotonic() < deadline:
        try:
            depths = broker.queue_depths(list(topology.work_queues()))
        except Exception:  # noqa: BLE001 - pika raises many unrelated types; the next look tries again
            depths = {"?": None}
        queued = any(found is None or found[0] > 0 for found in depths.values())
        unsent = OutboxMessage.objects.filter(published_at__isnull=True, next_attempt_at__lte=timezone.now()).exists()
        quiet = 0 if queued or unsent else quiet + 1
        if quiet >= 2:
            return True
        system.wait(0.5)
    return False


def story_run(console: Console, system: System, accounts: scenario.Accounts, *, base_url: str,
              timeout: float, keep_running: bool) -> list[str]:
    """The scenario against the running system, shown as it goes; the story's problems."""
    console.print(f"[green]✓[/] started {len(system.commands)} processes from the Procfile with honcho "
                  f"({', '.join(system.commands)}); logs in {system.log_glob}")
    web_wait(system, base_url)
    console.print(f"[green]✓[/] web answers at {base_url}/  (SIM_TIME_SCALE={settings.SIM_TIME_SCALE:g}, "
                  f"timeout {timeout:.0f}s)")
    with scenario.api_session(accounts.customer_token) as session:
        orders = scenario.orders_place(session, base_url)
        console.print(f"[green]✓[/] placed {len(orders)} orders through POST /api/orders/")
        for note in scenario.orders_cancel(session, base_url, orders):
            console.print(f"[green]✓[/] {note} through POST /api/orders/<id>/cancel/")
        deadline = time.monotonic() + timeout
        with report.Progress(console, orders, timeout=timeout) as progress:
            while not all(o.is_final for o in orders) and time.monotonic() < deadline:
                system.wait(POLL_SECONDS)
                progress.changed(scenario.orders_refresh(session, base_url, orders))
    if not all(o.is_final for o in orders):
        console.print(f"[bold red]timed out after {timeout:.0f}s[/] with orders still in flight")
    elif not system_drain(system):
        console.print(f"[yellow]messages still in flight after {DRAIN_SECONDS:.0f}s[/]")
    scenario.compensations_wait(orders, sleep=system.wait)
    report.summary_print(console, orders)
    report.links_print(console, base_url=base_url, accounts=accounts, orders=orders, log_glob=system.log_glob)
    if keep_running:
        console.print(f"\nThe system keeps running at {base_url}/ — Ctrl-C stops it.")
        system.hold()
    return scenario.story_problems(orders)


# --- the whole run ----------------------------------------------------------------------
def demo_run(console: Console, *, timeout: float, keep_running: bool = False) -> None:
    """Run the scenario end to end; DemoError says why it did not end as expected."""
    console.rule("[bold]Logistics integration platform — demo")
    database_and_broker_prepare(console)
    accounts = scenario.accounts_ensure()
    console.print(f"[green]✓[/] customer [bold]{accounts.customer_username}[/] "
                  f"{'created' if accounts.customer_created else 'reused'}; admin user "
                  f"{'created' if accounts.admin_password else 'exists'}")
    commands = procfile_commands(PROCFILE)
    if not commands:
        raise DemoError(f"{PROCFILE} defines no process")
    port = port_pick()
    env = {**os.environ, "WEB_PORT": str(port), "PYTHONUNBUFFERED": "1",
           "PATH": os.pathsep.join([str(BASE_DIR / ".venv" / "bin"), os.environ.get("PATH", os.defpath)])}
    system = System(commands, env=env, cwd=BASE_DIR, log_dir=RUN_DIR)
    try:
        problems = system.run(lambda: story_run(console, system, accounts, base_url=f"http://127.0.0.1:{port}",
                                                timeout=timeout, keep_running=keep_running), console=console)
    except SystemStopped as exc:
        if exc.signum is not None:
            raise DemoInterrupted(exc.signum) from exc
        raise DemoError(str(exc)) from exc
    except scenario.ScenarioError as exc:
        raise DemoError(str(exc)) from exc
    if problems:
        raise DemoError("the demo did not end as expected:\n  - " + "\n  - ".join(problems)
                        + f"\nlook at the process logs: {system.log_glob}")
    console.print("[bold green]demo passed:[/] every order final, the seed's order delivered, "
                  "the over-stock order rejected, the declined and the cancelled orders compensated")

"""The Procfile's processes, run by honcho's Manager while the demo's scenario runs beside them.

honcho's ``Manager.loop()`` belongs in the main thread (it takes SIGINT and SIGTERM), so
``System.run(body)`` runs the scenario in a thread of its own. honcho starts every process in
a session of its own, and stops them all (SIGTERM to each process group, SIGKILL after
``honcho.manager.KILL_WAIT`` s) when one of them exits, on Ctrl-C or SIGTERM, and here also
on SIGHUP and when the scenario returns. ``System`` is the printer honcho writes to: each
process's lines go to ``<log_dir>/demo-<name>.log`` and honcho's own lines (started, stopped,
signals) to ``demo-honcho.log``; the latter tell the scenario when the system stops under it.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.db import connections
from honcho import manager as honcho_manager
from honcho.environ import parse_procfile
from honcho.printer import Message, Printer
from rich.console import Console

T = TypeVar("T")

# honcho's own lines (honcho.manager.Manager), one event each
STARTED = re.compile(r"(?P<name>\S+) started \(pid=\d+\)")
STOPPED = re.compile(r"(?P<name>\S+) stopped \(rc=(?P<rc>-?\d+)\)")
SIGNALLED = re.compile(r"(?P<signal>SIG[A-Z]+) received")
KILLED = re.compile(r"sending SIGKILL to (?P<name>\S+)")


class SystemStopped(Exception):
    """The system stopped before the scenario was done: a signal came (``signum``) or a process exited."""

    def __init__(self, reason: str, *, signum: int | None = None) -> None:
        super().__init__(reason)
        self.signum = signum


def procfile_commands(path: Path) -> dict[str, str]:
    """The Procfile's processes, ``{name: command}`` in its order, as honcho reads them."""
    return dict(parse_procfile(path.read_text()).processes)


class System:
    """The Procfile's processes for the length of one ``run()``, and their logs."""

    def __init__(self, commands: dict[str, str], *, env: dict[str, str], cwd: Path, log_dir: Path) -> None:
        self.commands = commands
        self.env = env
        self.cwd = cwd
        self.log_dir = log_dir
        self.width = 0  # honcho's Manager sets it on its printer
        self.stopped = threading.Event()  # set once the processes stop, for whatever reason
        self.killed: list[str] = []
        self._manager = honcho_manager.Manager(printer=self)
        self._printers: dict[str, Printer] = {}
        self._started: set[str] = set()
        self._all_started = threading.Event()
        self._cause: SystemStopped | None = None  # why it stopped, when the scenario did not ask
        self._stop_asked = False
        self._stop_began: float | None = None

    @property
    def log_glob(self) -> str:
        return str(self.log_dir / "demo-*.log")

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"demo-{name}.log"

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = self.log_path(name).read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text)

    # --- what the scenario calls -------------------------------------------------------
    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``; SystemStopped as soon as the processes stop before the scenario asked."""
        if self.stopped.wait(seconds) and not self._stop_asked:
            raise self._stop_cause()

    def hold(self) -> None:
        """Until a signal stops the system (returns) or a process exits (SystemStopped)."""
        self.stopped.wait()
        cause = self._stop_cause()
        if cause.signum is None:
            raise cause

    # --- the run -----------------------------------------------------------------------
    def run(self, body: Callable[[], T], *, console: Console) -> T:
        """Start every process, run ``body`` in a thread, stop every process; ``body``'s result.

        Raises SystemStopped when a signal or an exiting process stopped the system first,
        else whatever ``body`` raised.
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        outcome: dict[str, Any] = {}
        thread = threading.Thread(target=self._body, args=(body, outcome, console), name="demo", daemon=True)
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        with contextlib.ExitStack() as logs:
            for name in [*self.commands, "honcho"]:
                log = logs.enter_context(open(self.log_path(name), "w", encoding="utf-8"))
                self._printers[name] = Printer(log, prefix=name == "honcho")
            for name, command in self.commands.items():
                self._manager.add_process(name, command, env=self.env, cwd=str(self.cwd))
            signal.signal(signal.SIGHUP, self._hangup)
            connections.close_all()  # honcho forks: no connection of ours shared with its children
            thread.start()
            try:
                self._manager.loop()
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
                self.stopped.set()
                thread.join()
        took = time.monotonic() - (self._stop_began or time.monotonic())
        if self.killed:
            console.print(f"[yellow]killed after {honcho_manager.KILL_WAIT}s:[/] {', '.join(self.killed)}")
        else:
            console.print(f"[green]✓[/] every process stopped ({took:.1f}s)")
        if "error" in outcome:
            raise self._cause or outcome["error"]
        return outcome["result"]

    def _body(self, body: Callable[[], T], outcome: dict[str, object], console: Console) -> None:
        try:
            while not self._all_started.wait(0.1):  # nothing of ours runs while honcho forks
                self.wait(0)
            outcome["result"] = body()
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            outcome["error"] = exc
        finally:
            connections.close_all()
            console.print(f"stopping {len(self.commands)} processes …")
            self._stop_asked = True
            self._stop_began = self._stop_began or time.monotonic()
            self._manager.terminate()

    def _hangup(self, signum: int, _frame: object) -> None:
        self._record(SystemStopped("stopped by SIGHUP", signum=signum))
        self._manager.terminate()

    def _record(self, cause: SystemStopped) -> None:
        self._stop_began = self._stop_began or time.monotonic()
        if self._cause is None and not self._stop_asked:
            self._cause = cause
        self.stopped.set()

    def _stop_cause(self) -> SystemStopped:
        return self._cause or SystemStopped("the process manager stopped")

    # --- honcho's printer --------------------------------------------------------------
    def write(self, message: Message) -> None:
        """Where honcho's Manager prints: a line of a process, or one of its own."""
        if message.name in self._printers:
            self._printers[message.name].write(message)
            return
        self._printers["honcho"].write(message)
        text = message.data.decode(errors="replace") if isinstance(message.data, bytes) else message.data
        if found := STARTED.match(text):
            self._started.add(found["name"])
            if self._started >= set(self.commands):
                self._all_started.set()
        elif found := STOPPED.match(text):
            name = found["name"]
            self._record(SystemStopped(
                f"process {name!r} ({self.commands.get(name)}) exited with code {found['rc']}; "
                f"last lines of {self.log_path(name)}:\n{self.log_tail(name)}"
            ))
        elif found := SIGNALLED.match(text):
            self._record(SystemStopped(f"stopped by {found['signal']}", signum=signal.Signals[found["signal"]]))
        elif found := KILLED.match(text):
            self.killed.append(found["name"])

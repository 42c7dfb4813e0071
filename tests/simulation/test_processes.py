"""The honcho adapter: the Procfile's processes around a scenario, their logs, and how they stop."""

import io
import os
import signal
from pathlib import Path

import pytest
from rich.console import Console

from simulation.processes import System, SystemStopped, procfile_commands


def system_of(commands: dict[str, str], log_dir: Path) -> System:
    return System(commands, env=dict(os.environ), cwd=log_dir, log_dir=log_dir)


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=120)


def test_the_procfile_is_read_by_honcho_in_its_order(tmp_path):
    # given
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: gunicorn app\n# a comment\nrelay: python manage.py relay_outbox\n")

    # when
    commands = procfile_commands(procfile)

    # then
    assert list(commands.items()) == [("web", "gunicorn app"), ("relay", "python manage.py relay_outbox")]


def test_each_process_logs_to_its_own_file_and_all_stop_when_the_scenario_returns(tmp_path):
    # given
    system = system_of({"greeter": "echo hello; exec sleep 30", "sleeper": "exec sleep 30"}, tmp_path)

    def scenario() -> str:
        while "hello" not in system.log_path("greeter").read_text():
            system.wait(0.05)
        return "done"

    # when
    result = system.run(scenario, console=quiet_console())

    # then
    assert result == "done"
    assert system.log_path("greeter").read_text() == "hello\n"
    assert system.log_path("sleeper").read_text() == ""
    assert system.killed == []
    honcho_log = system.log_path("honcho").read_text()
    assert sorted(line.split("| ")[1] for line in honcho_log.splitlines() if " stopped (" in line) == [
        "greeter stopped (rc=-15)", "sleeper stopped (rc=-15)",
    ]


def test_a_process_that_exits_stops_the_system_and_is_named_with_its_last_lines(tmp_path):
    # given
    system = system_of({"crasher": "echo boom; exit 3", "sleeper": "exec sleep 30"}, tmp_path)

    def scenario() -> None:
        while True:
            system.wait(0.05)

    # when
    with pytest.raises(SystemStopped) as stopped:
        system.run(scenario, console=quiet_console())

    # then
    assert stopped.value.signum is None
    assert str(stopped.value) == (f"process 'crasher' (echo boom; exit 3) exited with code 3; "
                                  f"last lines of {tmp_path / 'demo-crasher.log'}:\n    boom")


def test_a_signal_stops_every_process_and_says_which_signal(tmp_path):
    # given
    system = system_of({"sleeper": "exec sleep 30"}, tmp_path)

    def scenario() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        while True:
            system.wait(0.05)

    # when
    with pytest.raises(SystemStopped) as stopped:
        system.run(scenario, console=quiet_console())

    # then
    assert (stopped.value.signum, str(stopped.value)) == (signal.SIGTERM, "stopped by SIGTERM")
    assert "sleeper stopped (rc=-15)" in system.log_path("honcho").read_text()


def test_holding_the_system_ends_without_error_on_ctrl_c(tmp_path):
    # given
    system = system_of({"sleeper": "exec sleep 30"}, tmp_path)

    def scenario() -> str:
        os.kill(os.getpid(), signal.SIGINT)
        system.hold()
        return "held until Ctrl-C"

    # when
    result = system.run(scenario, console=quiet_console())

    # then
    assert result == "held until Ctrl-C"

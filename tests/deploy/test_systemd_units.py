"""deploy/systemd/: one unit per process kind, as docs/deployment.md describes them, checked by
``systemd-analyze verify`` (with the checkout in place of /srv/logistics, where the units
expect it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from simulation.processes import procfile_commands
from tests.harness import ROOT

UNITS = ROOT / "deploy" / "systemd"
# unit -> the Procfile line it runs
KINDS = {"logistics-web.service": "web", "logistics-relay@.service": "relay", "logistics-worker@.service": "worker",
         "logistics-qcluster.service": "scheduler", "logistics-sim-actors.service": "sim_actors"}


def test_there_is_a_unit_for_each_process_kind_running_its_procfile_line():
    procfile = procfile_commands(ROOT / "Procfile")
    assert sorted(path.name for path in UNITS.iterdir()) == sorted(KINDS)
    assert sorted(KINDS.values()) == sorted(procfile)
    for unit, kind in KINDS.items():
        text = (UNITS / unit).read_text()
        (exec_start,) = [line for line in text.splitlines() if line.startswith("ExecStart=")]
        program, *arguments = exec_start.removeprefix("ExecStart=").split()
        expected_program, *expected_arguments = procfile[kind].split()
        assert program == f"/srv/logistics/.venv/bin/{expected_program}", unit
        assert arguments == expected_arguments, unit
        assert "EnvironmentFile=/etc/logistics/env" in text, unit
        assert "Restart=always" in text, unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_every_unit(tmp_path):
    # given: the units with the checkout where they expect /srv/logistics; templates as an instance
    for unit in KINDS:
        text = (UNITS / unit).read_text().replace("/srv/logistics", str(ROOT))
        (tmp_path / unit.replace("@.", "@1.")).write_text(text)
    # when
    done = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                          capture_output=True, text=True, timeout=120, check=False)
    # then: no error and no warning (an unknown key, a missing program)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")

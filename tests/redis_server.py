"""Redis for the tests: the suite's own (``scripts/ensure_redis.sh``: what ``make test`` exports
as REDIS_URL) and throwaway servers that a test may kill. A Redis the tests did not start is
never used."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.fault.servers import free_port_run
from tests.harness import ROOT


def suite_redis_url() -> str:
    """REDIS_URL as ``make test`` set it (scripts/ensure_redis.sh), else that script's answer now."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if shutil.which("redis-server") is None and os.geteuid() != 0:
        pytest.skip("needs redis-server (apt-get install redis-server); make test installs it as root")
    done = subprocess.run([str(ROOT / "scripts" / "ensure_redis.sh")], capture_output=True, text=True, timeout=300,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/ensure_redis.sh failed: {done.stderr[-2000:]}")
    return done.stdout.strip()


class ThrowawayRedis:
    """A redis-server of one test's own, on a free port, its files in ``folder``; kill() is -9."""

    def __init__(self, folder: Path) -> None:
        if shutil.which("redis-server") is None:
            suite_redis_url()  # installs it (as root) or skips
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port_run(1, start=31000, stop=32000)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(folder),
             "--save", "", "--appendonly", "no"],
            stdout=(folder / "redis.log").open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        client = redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(timeout=10)

"""Fixtures of the fault tests: a RabbitMQ virtual host of their own, and a System per test.

The fault tests purge queues, stop the broker's application and kill processes. They run in
the virtual host ``FAULT_VHOST`` (created here with ``rabbitmqctl`` when the broker is local),
so that a demo or a developer's system on the default virtual host of the same broker
neither eats their messages nor has its own purged. Without ``rabbitmqctl`` they fall back to
RABBITMQ_URL as it is.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from urllib.parse import quote, urlsplit, urlunsplit

import pika
import pytest
from django.conf import settings

from messaging import broker as broker_mod
from messaging import topology
from tests.harness import LOG_DIR, System

FAULT_VHOST = "logistics-fault-tests"


def _rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _vhost_url(base_url: str, vhost: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, parts.fragment))


@pytest.fixture(scope="session")
def fault_rabbitmq_url() -> str:
    base = settings.RABBITMQ_URL
    host = urlsplit(base).hostname or "localhost"
    if shutil.which("rabbitmqctl") is None or host not in {"localhost", "127.0.0.1", "::1"}:
        return base
    listed = _rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers")
    if listed.returncode != 0:
        return base
    if FAULT_VHOST not in listed.stdout.split():
        created = _rabbitmqctl("add_vhost", FAULT_VHOST)
        if created.returncode != 0 and "already" not in (created.stdout + created.stderr):
            return base
    user = urlsplit(base).username or "guest"
    granted = _rabbitmqctl("set_permissions", "-p", FAULT_VHOST, user, ".*", ".*", ".*")
    if granted.returncode != 0:
        return base
    return _vhost_url(base, FAULT_VHOST)


@pytest.fixture
def fault_rabbitmq(fault_rabbitmq_url, settings, monkeypatch) -> str:
    """This process and every process a System starts from now on use the fault vhost."""
    settings.RABBITMQ_URL = fault_rabbitmq_url
    monkeypatch.setenv("RABBITMQ_URL", fault_rabbitmq_url)
    return fault_rabbitmq_url


@pytest.fixture
def broker(fault_rabbitmq):
    """The real RabbitMQ (fault vhost) with the topology declared and every queue empty."""
    try:
        connection = broker_mod.connect()
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ is not reachable (make test starts it): {exc!r}")
    channel = connection.channel()
    topology.declare(channel)
    for name in topology.all_queue_names():
        channel.queue_purge(name)
    yield channel
    if connection.is_open:
        connection.close()


@pytest.fixture
def fault_system(request, transactional_db, broker):
    """A System whose logs go to .run/test-logs/fault/<test>/; everything it started is
    stopped afterwards. Tests start what they need."""
    log_dir = LOG_DIR / "fault" / request.node.name
    shutil.rmtree(log_dir, ignore_errors=True)
    system = System(log_dir=log_dir)
    yield system
    system.stop_all()


@pytest.fixture(autouse=True)
def _no_fault_injection_here(monkeypatch):
    """Fault injection is given per process by the tests, never inherited from the shell."""
    monkeypatch.delenv("FAULT_INJECTION", raising=False)
    assert not os.environ.get("FAULT_INJECTION")

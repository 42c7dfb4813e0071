"""Fixtures of the fault tests: a RabbitMQ virtual host of their own, and a System per test.

Tests that stop, kill or pause a broker or a database do it to servers started here for them
(``rabbitmq_node``, ``rabbitmq_cluster``, ``own_postgres``: tests/fault/servers.py), never to
the broker or the database the suite found running.

The fault tests purge queues and kill processes. When RABBITMQ_URL names the default virtual
host ``/`` of a local broker, they run in a virtual host of their own, ``fault-<test database>``
(created here with ``rabbitmqctl``), so that a demo or a developer's system on ``/`` of the same
broker neither eats their messages nor has its own purged, and two test sessions with different
databases do not share queues. A RABBITMQ_URL that names another virtual host is taken to be
isolated already and used as it is; so is everything when ``rabbitmqctl`` is not available.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import pytest
from django.conf import settings

from messaging import broker as broker_mod
from messaging import topology
from tests.fault.servers import Postgres, RabbitCluster, rabbitmq_installed
from tests.fault.tools import stocked
from tests.harness import LOG_DIR, System, topology_ready


def _rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout, check=False)


def _vhost_url(base_url: str, vhost: str) -> str:
    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(vhost, safe=""), parts.query, parts.fragment))


@pytest.fixture(scope="session")
def fault_rabbitmq_url(django_db_setup) -> str:
    base = settings.RABBITMQ_URL
    parts = urlsplit(base)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    if vhost != "/" or shutil.which("rabbitmqctl") is None or parts.hostname not in {"localhost", "127.0.0.1", "::1"}:
        return base
    from django.db import connection

    name = "fault-" + connection.settings_dict["NAME"]
    listed = _rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers")
    if listed.returncode != 0:
        return base
    if name not in listed.stdout.split():
        created = _rabbitmqctl("add_vhost", name)
        if created.returncode != 0 and "already" not in (created.stdout + created.stderr):
            return base
    user = parts.username or "guest"
    if _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*").returncode != 0:
        return base
    return _vhost_url(base, name)


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
    topology_ready(connection)
    channel = connection.channel()
    for name in topology.all_queue_names():
        channel.queue_purge(name)
    yield channel
    # the broker may have been restarted under it (test_broker_outage)
    with contextlib.suppress(pika.exceptions.AMQPError, OSError):
        if connection.is_open:
            connection.close()


@pytest.fixture
def fault_system(request, transactional_db, broker):
    """A System whose logs go to .run/fault-logs-<test database>/<test>/; everything it started
    is stopped afterwards. Tests start what they need.

    Not under LOG_DIR: another test session starting meanwhile (say with a database of its own)
    empties LOG_DIR, and these tests count lines of their workers' logs."""
    from django.db import connection

    log_dir = LOG_DIR.parent / f"fault-logs-{connection.settings_dict['NAME']}" / request.node.name
    shutil.rmtree(log_dir, ignore_errors=True)
    system = System(log_dir=log_dir)
    yield system
    system.stop_all()


@pytest.fixture(autouse=True)
def _no_fault_injection_here(monkeypatch):
    """Fault injection is given per process by the tests, never inherited from the shell."""
    monkeypatch.delenv("FAULT_INJECTION", raising=False)
    assert not os.environ.get("FAULT_INJECTION")


@pytest.fixture(scope="session")
def rabbitmq_node():
    """A RabbitMQ node of the tests' own, to stop and start."""
    if not rabbitmq_installed():
        pytest.skip("needs rabbitmq-server installed")
    node = RabbitCluster.start(nodes=1)
    yield node
    node.destroy()


@pytest.fixture(scope="session")
def rabbitmq_cluster():
    """A three-node RabbitMQ cluster of the tests' own, to kill and pause nodes of."""
    if not rabbitmq_installed():
        pytest.skip("needs rabbitmq-server installed")
    cluster = RabbitCluster.start(nodes=3)
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def own_postgres():
    """A PostgreSQL cluster of the tests' own, to restart and kill, its database migrated."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        pytest.skip("needs PostgreSQL's server binaries")
    server = Postgres.start()
    server.database_migrated()
    yield server
    server.destroy()


@pytest.fixture
def initial_stock(transactional_db) -> dict[str, int]:
    """The demo catalogue with 1000 of every product on the suite's test database: the stock
    before the test's orders (tools.stocked() on a database of the test's own)."""
    return stocked()


@pytest.fixture
def on_rabbitmq_node(rabbitmq_node, settings, monkeypatch) -> str:
    """The tests' own node in use (a module's ``fault_rabbitmq`` asks for it)."""
    return use_broker(rabbitmq_node.url, settings, monkeypatch)


@pytest.fixture
def on_rabbitmq_cluster(rabbitmq_cluster, settings, monkeypatch) -> str:
    """The tests' own three nodes in use, all named in RABBITMQ_URL (a module's ``fault_rabbitmq``
    asks for it)."""
    return use_broker(rabbitmq_cluster.url, settings, monkeypatch)


def use_broker(url: str, settings, monkeypatch) -> str:
    """This process and every process a System starts from now on use the broker at ``url``."""
    settings.RABBITMQ_URL = url
    monkeypatch.setenv("RABBITMQ_URL", url)
    return url

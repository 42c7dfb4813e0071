from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pika
import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from messaging import broker as broker_mod
from messaging import topology
from shop.services import customer_create
from tests.harness import LOG_DIR, XDIST_WORKER, System, stop_on_signals, topology_ready

TESTS = Path(__file__).resolve().parent
# Markers given by where a test lives (pytest.ini describes them); `make test-quick` leaves out "slow".
SLOW_FOLDERS = {"fault": "fault", "deploy": "deploy", "tutorial": "tutorial"}
# Tests that use something of the whole machine (fixed ports, servers they start and kill, most of
# the CPU for minutes): with pytest-xdist they run one after another on one worker.
ONE_WORKER_FOLDERS = ("fault", "tutorial")


def pytest_configure(config: pytest.Config) -> None:
    """What tests/settings.py chose for this run, made ready for the processes the tests start:
    the .run/ folder (SQLite files, logs) and this run's metrics folder, which the worker
    processes inherit through the environment (tests/settings.py reads it back). Under
    pytest-xdist each worker has its own (the controller runs no test) and a RabbitMQ vhost of
    its own; pytest-django gives each its own test database (test_<name>_gw0, ...)."""
    stop_on_signals()
    if getattr(config.option, "numprocesses", None) and not XDIST_WORKER:
        return  # the xdist controller: its workers set up their own
    (settings.BASE_DIR / ".run").mkdir(exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.PROMETHEUS_MULTIPROC_DIR
    os.environ["API_THROTTLE_REDIS_PREFIX"] = settings.API_THROTTLE_REDIS_PREFIX
    if XDIST_WORKER:
        settings.RABBITMQ_URL = os.environ["RABBITMQ_URL"] = _worker_vhost_url(settings.RABBITMQ_URL, XDIST_WORKER)


def _worker_vhost_url(base: str, worker: str) -> str:
    """``base`` with a vhost of the worker's own on the same local broker (``<vhost>_gw0``, ...),
    made with rabbitmqctl as scripts/test_vhost.sh makes the suite's."""
    parts = urlsplit(base)
    local = parts.hostname in {"localhost", "127.0.0.1", "::1"} and (parts.port or 5672) == 5672
    if "," in base or not local or shutil.which("rabbitmqctl") is None:
        raise pytest.UsageError(
            f"pytest -n needs a vhost per worker: RABBITMQ_URL must name the local broker on 5672 and "
            f"rabbitmqctl must be there to make them (RABBITMQ_URL={parts.scheme}://{parts.hostname}:{parts.port})")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    name = f"{'logistics_test' if vhost == '/' else vhost}_{worker}"
    added = subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], capture_output=True, text=True, check=False)
    if added.returncode != 0 and "already" not in added.stdout + added.stderr:
        raise pytest.UsageError(f"rabbitmqctl add_vhost {name}: {added.stderr.strip()}")
    subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", name, parts.username or "guest", ".*", ".*", ".*"],
                   capture_output=True, check=True)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(name, safe=""), parts.query, parts.fragment))


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A random id made at import (``str(uuid.uuid4())`` as a parameter) shows as ``uuid`` in the
    test's name: pytest-xdist's workers must collect the same names."""
    if isinstance(val, str) and UUID.search(val):
        return UUID.sub("uuid", val).encode("unicode_escape").decode("ascii")
    return None


@pytest.hookimpl(tryfirst=True)  # before -m selects and xdist groups by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers by folder rather than on every test: ``slow`` and ``fault``/``deploy``/``tutorial``
    for tests/fault, tests/deploy, tests/tutorial, ``slow`` and ``browser`` for the tests in a real
    browser (test_browser*.py); and under pytest-xdist the tests of ONE_WORKER_FOLDERS in one group
    (``--dist loadgroup`` runs a group on one worker)."""
    for item in items:
        path = Path(str(item.path))
        try:
            folder = path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in SLOW_FOLDERS:
            item.add_marker(SLOW_FOLDERS[folder])
            item.add_marker("slow")
        if path.name.startswith("test_browser"):
            item.add_marker("browser")
            item.add_marker("slow")
        if folder in ONE_WORKER_FOLDERS:
            item.add_marker(pytest.mark.xdist_group("one_worker"))


@pytest.fixture(autouse=True)
def _signal_handlers_kept():
    """A relay or a consumer run inside a test takes SIGTERM and SIGINT for itself (to stop its
    loop): the run's own handlers (tests/harness.py stop_on_signals, Ctrl-C) come back after it."""
    signums = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    saved = {signum: signal.getsignal(signum) for signum in signums}
    yield
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in saved.items():
        if signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


@pytest.fixture(scope="session", autouse=True)
def _throttle_histories():
    """This run's throttle histories (tests/settings.py) go when the run ends."""
    yield
    shutil.rmtree(settings.API_THROTTLE_DIR, ignore_errors=True)


@pytest.fixture(autouse=True)
def _request_budgets_of_its_own(monkeypatch):
    """Every test counts its requests afresh in Redis (when REDIS_URL is set): keys of its own.
    (Set on the settings themselves: pytest-django's ``settings`` would hide SETTINGS_MODULE.)"""
    monkeypatch.setattr(settings, "API_THROTTLE_REDIS_PREFIX",
                        f"{settings.API_THROTTLE_REDIS_PREFIX}:{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="session", autouse=True)
def _fresh_logs():
    shutil.rmtree(LOG_DIR, ignore_errors=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)


@pytest.fixture
def broker():
    """The real RabbitMQ with the topology declared and every queue empty."""
    try:
        connection = broker_mod.connect(heartbeat=0)  # idle through a whole test: no heartbeat to miss
    except pika.exceptions.AMQPError as exc:
        pytest.fail(f"RabbitMQ is not reachable (make test starts it): {exc!r}")
    topology_ready(connection)
    channel = connection.channel()
    for name in topology.all_queue_names():
        channel.queue_purge(name)
    yield channel
    try:
        if connection.is_open:
            connection.close()
    except pika.exceptions.AMQPError:
        pass  # the broker restarted under us (the broker-outage fault test does that); nothing to tidy


@pytest.fixture
def catalogue(db):
    call_command("load_demo_data", verbosity=0)


@pytest.fixture
def make_customer(db):
    def make(username: str | None = None, email: str = "customer@example.com"):
        customer, token = customer_create(username=username or f"c-{uuid.uuid4().hex[:8]}", email=email)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        return customer, client

    return make


@pytest.fixture
def token_client_for(db):
    """An API client that authenticates as ``user`` with a token of its own."""
    from accounts.services import api_token_issue

    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_issue(user=user)}")
        return client

    return make


@pytest.fixture
def staff_client_with(db):
    """An API client signed in through the session (as staff use the API) as a new staff user
    given ``permissions`` ("app_label.codename" each)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    def make(username: str, *permissions: str) -> APIClient:
        user = get_user_model().objects.create_user(username, is_staff=True)
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def customer_client(make_customer):
    return make_customer("jaan", "jaan.tamm@example.com")[1]


@pytest.fixture
def system(transactional_db, broker):
    """The relay, every queue worker and qcluster as real processes (SIM_TIME_SCALE=0)."""
    system = System()
    yield system
    system.stop_all()

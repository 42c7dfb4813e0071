from __future__ import annotations

import os
import shutil
import uuid

import pika
import pytest
from django.conf import settings
from django.core.management import call_command
from rest_framework.test import APIClient

from messaging import broker as broker_mod
from messaging import topology
from shop.services import customer_create
from tests.harness import LOG_DIR, System, topology_ready


def pytest_configure(config: pytest.Config) -> None:
    """What tests/settings.py chose for this run, made ready for the processes the tests start:
    the .run/ folder (SQLite files, logs) and this run's metrics folder, which the worker
    processes inherit through the environment (tests/settings.py reads it back)."""
    (settings.BASE_DIR / ".run").mkdir(exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.PROMETHEUS_MULTIPROC_DIR
    os.environ["API_THROTTLE_REDIS_PREFIX"] = settings.API_THROTTLE_REDIS_PREFIX


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

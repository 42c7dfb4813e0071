from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from messaging import broker as broker_mod
from messaging import topology
from tests.harness import topology_ready

STAFF_PASSWORD = "observe-the-flow-1"


@pytest.fixture(scope="session", autouse=True)
def _prune_old_metric_folders():
    """Each test session counts into .run/prometheus-test/<its pid> (config/settings.py):
    remove the folders of sessions that are no longer running."""
    mine = Path(settings.PROMETHEUS_MULTIPROC_DIR)
    parent = mine.parent
    if parent.name != "prometheus-test":
        return
    for folder in parent.iterdir():
        if folder == mine or not folder.name.isdigit():
            continue
        try:
            os.kill(int(folder.name), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user(
        "flow-staff", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff_user):
    client = Client()
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer_web_client(make_customer):
    """A customer (not staff) logged in to the web site with a session."""
    customer, _ = make_customer("web-customer", "web.customer@example.com")
    client = Client()
    client.force_login(customer.user)
    return client


@pytest.fixture
def socket_closed_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def empty_queues(transactional_db):
    """The topology declared and every queue empty; the connection is not held during the test
    (the browser tests' live server and workers use the broker meanwhile)."""
    connection = broker_mod.connect()
    try:
        topology_ready(connection)
        channel = connection.channel()
        for name in topology.all_queue_names():
            channel.queue_purge(name)
    finally:
        connection.close()

"""Trouble first, in a real browser: a message parked by a real worker and a worker frozen with
SIGSTOP are named at the top of the dashboard, above everything else, each with its link; the
frozen worker is listed apart from the stopped ones. The screenshot goes to
.run/artifacts/dashboard-trouble.png (scripts/screenshots.py copies it into docs/img/).
"""

from __future__ import annotations

import os
import signal
import uuid

import pika
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from messaging import broker as broker_mod
from messaging.models import DeadLetter, WorkerHeartbeat
from tests.harness import LOG_DIR, System, wait_until
from tests.observability.conftest import STAFF_PASSWORD
from tests.observability.test_browser import CHROMIUM, CHROMIUM_ARGS, shot

pytestmark = pytest.mark.e2e

SILENT_SECONDS = 3


def park_a_malformed_order() -> str:
    """An order.placed that is not JSON, straight onto new_orders: its worker parks it."""
    message_id = str(uuid.uuid4())
    connection = broker_mod.connect()
    try:
        connection.channel().basic_publish(
            exchange="", routing_key="new_orders", body=b"{not json",
            properties=pika.BasicProperties(content_type="application/json", message_id=message_id,
                                            type="order.placed", delivery_mode=pika.DeliveryMode.Persistent))
    finally:
        connection.close()
    return message_id


def test_the_banner_names_a_parked_message_and_a_frozen_worker_first(
        django_db_setup, empty_queues, live_server, catalogue, settings):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # given: workers of new_orders and delivery_updates beating every half second; the dashboard
    # calls a worker silent after 3 s without a beat (30 s by default)
    settings.WORKER_SILENT_SECONDS = SILENT_SECONDS
    settings.TIME_ZONE = "Europe/Tallinn"  # the shop's clock: the page shows no other
    zone = timezone.localtime().strftime("%Z")  # EET, or EEST in summer
    if "localhost" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    base = live_server.url.replace("127.0.0.1", "localhost")  # secure cookies need a secure context
    get_user_model().objects.create_user("ops-trouble", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    system = System(env={"WORKER_HEARTBEAT_SECONDS": "0.5"}, log_dir=LOG_DIR / "observability-trouble")
    frozen = None
    errors: list[str] = []
    try:
        system.start("new_orders")
        [frozen] = system.start("delivery_updates")
        wait_until(lambda: set(WorkerHeartbeat.objects.filter(stopped_at__isnull=True).values_list("queue", flat=True))
                   == {"new_orders", "delivery_updates"}, timeout=30, what="both workers beating")
        # when: a malformed message is parked, and the delivery_updates worker freezes
        parked = park_a_malformed_order()  # the message id
        wait_until(lambda: DeadLetter.objects.filter(message_id=parked).exists(), timeout=30, what="parked")
        os.kill(frozen.pid, signal.SIGSTOP)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            page.goto(f"{base}/dashboard/")
            page.fill("#id_username", "ops-trouble")
            page.fill("#id_password", STAFF_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/dashboard/")
            # then: within the silence limit and a poll, the banner names both
            page.wait_for_selector("#trouble li[data-kind=silent_workers]", timeout=20_000)
            items = page.eval_on_selector_all("#trouble li", "lis => lis.map(li => li.dataset.kind)")
            assert items[:2] == ["dead_letters", "silent_workers"], items
            assert page.inner_text("#trouble li[data-kind=dead_letters]") == (
                "1 dead letter waiting for a person (new_orders 1)")
            silent = page.inner_text("#trouble li[data-kind=silent_workers]")
            assert silent.startswith(f"1 worker silent for over {SILENT_SECONDS} s: consumer delivery_updates "
                                     f"(pid {frozen.pid}, last heard ")
            assert silent.endswith(f" {zone})")
            # at the top: seen without scrolling, above the stage tiles
            banner = page.locator("#trouble").bounding_box()
            assert banner["y"] < page.locator("#stages").bounding_box()["y"]
            assert banner["y"] + banner["height"] <= 900
            assert page.inner_text("#h-trouble") == "Needs a person now"
            # the frozen worker is among the running ones, marked silent; none are stopped
            running = page.eval_on_selector_all("#workers tbody tr", "trs => trs.map(tr => tr.className)")
            assert sorted(running) == ["live", "silent"]
            assert running[0] == "silent"
            assert page.inner_text("#workers-stopped-count") == "0"
            assert page.inner_text("#time-zone") == "times in Europe/Tallinn"
            # the browser's own clock (UTC here) is not used: the page's times are Tallinn's
            beat = page.inner_text("#workers tbody tr.silent td:nth-child(5)")
            assert beat == silent.rsplit("last heard ", 1)[1].split(" ")[0]
            shot(page, "dashboard-trouble.png")
            # each item leads to what needs doing: the parked message in the admin
            page.click("#trouble li[data-kind=dead_letters] a")
            page.wait_for_url(f"{base}/admin/messaging/deadletter/?redriven_at__isempty=1")
            assert page.locator("#result_list tbody tr").count() == 1
            assert page.inner_text("#result_list tbody tr td.field-type") == "order.placed"
            browser.close()
    finally:
        if frozen is not None and frozen.poll() is None:
            os.kill(frozen.pid, signal.SIGCONT)
        system.stop_all()
    assert errors == []

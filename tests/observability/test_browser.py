"""The dashboard in a real browser (headless Chromium driven by Playwright) while orders flow
through the real relay, queue workers and scheduler; then the customer's tracking page on a
phone-sized screen. Screenshots go to .run/artifacts/.

Chromium is Debian's package (scripts/ensure_chromium.sh installs it for `make test`);
Playwright only drives it -- `playwright install` (a browser download) is never needed.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import requests
from django.contrib.auth import get_user_model

from shop.services import customer_create
from simulation.demo_data import SEED_ORDER
from tests.harness import LOG_DIR, ROOT, System
from tests.observability.conftest import STAFF_PASSWORD

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / ".run" / "artifacts"
ORDERS = 5
STAGES = ["new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered", "rejected",
          "payment_failed", "cancelled"]


def stage_counts(page) -> dict[str, int]:
    return page.evaluate(
        "(stages) => Object.fromEntries(stages.map("
        "s => [s, Number(document.getElementById('stage-' + s).textContent)]))",
        STAGES)


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_dashboard_follows_orders_live_and_the_tracking_page_reads_on_a_phone(
        django_db_setup, empty_queues, live_server, catalogue, settings):
    # (the test database is set up before the live server, so it is torn down after it)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # given (no ORM calls inside the Playwright block below: its sync API runs an event loop
    # in this thread, and Django would refuse them -- the test reads through HTTP there)
    if "localhost" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    # Secure cookies: Chromium keeps them on http://localhost (a secure context), so the
    # live server is addressed by that name
    base = live_server.url.replace("127.0.0.1", "localhost")
    get_user_model().objects.create_user("flow-staff", password=STAFF_PASSWORD, is_staff=True)
    _, token = customer_create(username="browser-customer", email="browser.customer@example.com")
    system = System(env={"SIM_TIME_SCALE": "0.3"}, log_dir=LOG_DIR / "observability-browser")
    system.start_all()
    errors: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
            page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
            # log in as staff through the admin's login page, which sends us on to the dashboard
            page.goto(f"{base}/dashboard/")
            assert page.url == f"{base}/admin/login/?next=/dashboard/"
            page.fill("#id_username", "flow-staff")
            page.fill("#id_password", STAFF_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_url(f"{base}/dashboard/")
            page.evaluate("window.__sameDocument = true")
            page.wait_for_function("() => Number(document.body.dataset.polls) >= 1", timeout=15_000)
            page.wait_for_function(
                "() => document.querySelector('#queues tr[data-queue=new_orders] td:nth-child(3)').textContent === '1'",
                timeout=30_000)  # every worker is connected
            # a 2-minute chart window (2 s per sample), chosen on the page
            page.select_option("#window", "2")
            page.wait_for_function("() => document.querySelector('.win').textContent === '2'", timeout=10_000)
            assert page.url == f"{base}/dashboard/?minutes=2"
            before = stage_counts(page)
            assert before == dict.fromkeys(STAGES, 0)
            shot(page, "dashboard-before.png")

            # when: customers place orders through the API
            order_ids = []
            for _ in range(ORDERS):
                body = copy.deepcopy(SEED_ORDER)
                body["items"] = [{"product_id": "PRD004", "quantity": 1}]
                response = requests.post(f"{base}/api/orders/", json=body, timeout=10,
                                         headers={"Authorization": f"Token {token}"})
                assert response.status_code == 201, response.text
                order_ids.append(response.json()["order_id"])
            seen = []
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                counts = stage_counts(page)
                if not seen or counts != seen[-1]:
                    seen.append(counts)
                if counts["delivered"] == ORDERS:
                    break
                page.wait_for_timeout(250)
            else:
                print(system.log_tail())
                raise AssertionError(f"the dashboard never showed {ORDERS} delivered; it showed {seen}")

            # then: the counts moved through the stages in the same page (no reload)
            assert page.evaluate("window.__sameDocument") is True
            assert seen[-1] == {**dict.fromkeys(STAGES, 0), "delivered": ORDERS}
            in_between = [c for c in seen[1:-1] if any(c[s] for s in STAGES[1:6])]
            assert in_between, f"no order was seen between placed and delivered: {seen}"
            assert all(sum(c.values()) in (0, *range(1, ORDERS + 1)) for c in seen)
            print(f"stage counts seen on the dashboard: {len(seen)} states, e.g. {in_between[0]}")
            # the charts are drawn: six stacked stage areas and the bars of what was placed and delivered
            page.wait_for_function(
                f"() => document.getElementById('throughput-chart').getAttribute('data-delivered') === '{ORDERS}'",
                timeout=10_000)
            assert page.locator("#flow-chart path.area").count() == 6  # the six in-flight stages
            assert page.locator("#flow-chart path.total").count() == 1
            assert page.get_attribute("#flow-chart", "data-samples") == "60"
            assert page.get_attribute("#throughput-chart", "data-placed") == str(ORDERS)
            assert page.locator("#throughput-chart rect.bar").count() >= 2
            assert page.locator("#latest tbody tr").count() == ORDERS
            assert page.inner_text("#vehicles-busy") == "0"
            assert page.inner_text("#vehicles-free") == "3"
            assert page.inner_text("#outbox-backlog") == "0"
            assert page.is_hidden("#broker-down")
            shot(page, "dashboard-after.png")

            # an order's journey, from its link on the dashboard
            page.click(f"#latest tr[data-order='{order_ids[0]}'] a.journey")
            page.wait_for_url(f"{base}/dashboard/orders/{order_ids[0]}/journey/")
            journey = page.evaluate(f"fetch('/dashboard/orders/{order_ids[0]}/journey.json').then(r => r.json())")
            types = [hop["type"] for hop in journey["hops"]]
            # five stages, or six when its shipment waited for one of the three vehicles (five orders
            # at SIM_TIME_SCALE=0.3: which ones wait depends on the simulated delays), each told to the shop
            stages = types.count("shipment.status_changed")
            assert stages in (5, 6)
            assert types.count("customer.notified") == stages
            # the timers are hops too: the payment provider's answer, the simulated picker's and
            # the simulated driver's (one per stage driven); the cancelled payment deadline is not
            assert types[:9] == ["order.placed", "order.confirmed", "payment.requested", "payment.charge_due",
                                 "payment.captured", "order.paid", "picking.started", "sim.picking_done",
                                 "shipment.requested"]
            assert types.count("sim.stage_reached") == 4
            assert "payment.deadline_due" not in types
            assert page.locator("#hops tbody tr").count() == len(types) == 9 + 2 * stages + 4
            shot(page, "journey.png")

            # the customer's tracking page on a phone
            shipment_id = requests.get(f"{base}/api/orders/{order_ids[0]}/", timeout=10,
                                       headers={"Authorization": f"Token {token}"}).json()["shipment_id"]
            phone = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
            phone.on("pageerror", lambda exc: errors.append(f"pageerror (track): {exc}"))
            phone.on("console",
                     lambda msg: errors.append(f"console (track): {msg.text}") if msg.type == "error" else None)
            phone.goto(f"{base}/track/{shipment_id}/")
            assert phone.inner_text("#current-stage") == "Delivered"
            assert phone.locator("li.current[data-stage=delivered]").count() == 1
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
            shot(phone, "tracking-phone.png")
            browser.close()
    finally:
        system.stop_all()
    assert errors == []

"""The front door in a real browser (headless Chromium) with the Content-Security-Policy on and
no network beyond this site: the front page, Swagger UI, ReDoc, the admin, the dashboard and
the tracking page load, render and log no console error (a CSP violation is one).

Chromium is Debian's package (scripts/ensure_chromium.sh); Playwright only drives it.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from support.services import tracking_record_stage
from tests.observability.conftest import STAFF_PASSWORD
from tests.observability.test_browser import CHROMIUM, CHROMIUM_ARGS, shot

pytestmark = pytest.mark.e2e


def test_front_page_docs_admin_dashboard_and_tracking_work_offline_under_the_csp(
        django_db_setup, transactional_db, live_server, settings):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # given: a staff user and a shipment on its way (no ORM calls inside the Playwright block)
    if "localhost" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    base = live_server.url.replace("127.0.0.1", "localhost")  # secure cookies: a secure context
    get_user_model().objects.create_user("door-staff", password=STAFF_PASSWORD, is_staff=True, is_superuser=True)
    shipment_id = "SHP-" + uuid.uuid4().hex[:20].upper()
    tracking_record_stage(order_id=uuid.uuid4(), shipment_id=shipment_id, status="in_transit",
                          message="On its way", timestamp=timezone.now())
    errors: list[str] = []
    elsewhere: list[str] = []
    policies: dict[str, str] = {}

    def offline(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort("internetdisconnected")

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", offline)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"pageerror {page.url}: {exc}"))
        page.on("console",
                lambda msg: errors.append(f"console {page.url}: {msg.text}") if msg.type == "error" else None)
        page.on("response", lambda r: policies.setdefault(r.url, r.headers.get("content-security-policy", ""))
                if r.request.resource_type == "document" else None)

        # when: a newcomer opens the front page and follows its links
        page.goto(f"{base}/")
        assert page.title() == "Logistics integration platform"
        page.click("text=API docs")
        page.wait_for_url(f"{base}/api/docs/")
        page.wait_for_selector(".opblock-summary-path", timeout=20_000)  # Swagger UI rendered the schema
        assert page.locator(".opblock-summary-path[data-path='/api/orders/']").count() >= 1
        shot(page, "docs-offline.png")

        page.goto(f"{base}/api/redoc/")
        page.locator("h2", has_text="Place an order").first.wait_for(timeout=20_000)  # ReDoc rendered it
        shot(page, "redoc-offline.png")

        page.goto(f"{base}/")
        page.fill("input[name=shipment_id]", shipment_id)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/track/{shipment_id}/")
        assert page.inner_text("#current-stage") == "On its way"

        page.goto(f"{base}/dashboard/")
        page.fill("#id_username", "door-staff")
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/dashboard/")
        page.wait_for_function("() => Number(document.body.dataset.polls) >= 1", timeout=15_000)  # its script runs
        shot(page, "dashboard-csp.png")

        page.goto(f"{base}/admin/shop/order/")
        assert page.locator("#changelist").count() == 1
        page.goto(f"{base}/api/orders/")  # the browsable API
        assert page.locator("#post-generic-content-form").count() == 1
        browser.close()

    # then: no console error -- but the one the ReDoc bundle makes itself: it hard-codes its
    # attribution logo from its own CDN, which the policy blocks (the page is whole without it)
    redoc_logo = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"
    assert [e for e in errors if not (e.startswith(f"console {base}/api/redoc/") and redoc_logo in e)] == []
    assert elsewhere == []
    documents = [url for url in policies if url.startswith(base)]
    assert len(documents) >= 7
    assert all("script-src 'self'" in policies[url] for url in documents), policies

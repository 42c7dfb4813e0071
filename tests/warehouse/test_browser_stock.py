"""The stock page in a real browser (headless Chromium, as tests/observability/test_browser.py):
on hand, held and available apart; a worker records goods received on the product's "Adjust
stock" page; the row itself offers no Save and no Delete. The screenshot goes to
.run/artifacts/stock.png (scripts/screenshots.py copies it into docs/img/).
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.contrib.auth import get_user_model

from tests.observability.test_browser import CHROMIUM, CHROMIUM_ARGS, shot
from warehouse.models import StockItem
from warehouse.services import RequestedLine, picking_start, stock_adjust, stock_reserve

pytestmark = pytest.mark.e2e

PASSWORD = "count-the-shelves-1"


def reserve(lines: list[tuple[str, int]], *, paid: bool = False) -> None:
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[RequestedLine(sku=sku, quantity=q) for sku, q in lines],
                  recipient="Jaan Tamm", shipping_method="express",
                  shipping_address={"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117",
                                    "country": "Estonia"})
    if paid:
        picking_start(order_id=order_id)


def figures(page, sku: str) -> list[str]:
    row = page.locator("#result_list tbody tr", has_text=sku)
    return [row.locator(f"td.field-{name}").inner_text() for name in ("on_hand", "held", "available")]


def test_a_worker_sees_the_shelf_apart_from_what_is_held_and_adjusts_with_a_reason(
        django_db_setup, live_server, catalogue, settings):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # given: orders holding laptops and keyboards, one count that found a monitor missing
    if "localhost" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    base = live_server.url.replace("127.0.0.1", "localhost")  # secure cookies need a secure context
    get_user_model().objects.create_user("kadri", password=PASSWORD, is_staff=True, is_superuser=True)
    reserve([("PRD001", 1), ("PRD003", 2)], paid=True)
    reserve([("PRD001", 2)])
    stock_adjust(sku="PRD002", reason="counted", quantity=14, note="yearly count", made_by="kadri")
    laptop = StockItem.objects.get(sku="PRD001").pk
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 600})
        page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
        page.goto(f"{base}/admin/warehouse/stockitem/")
        page.fill("#id_username", "kadri")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{base}/admin/warehouse/stockitem/")
        # then: the three figures apart
        assert figures(page, "PRD001") == ["10", "3", "7"]
        assert figures(page, "PRD002") == ["14", "0", "14"]
        # when: five laptops come in, recorded on the product's page
        page.locator("#result_list tbody tr", has_text="PRD001").get_by_text("Adjust stock").click()
        page.wait_for_url(f"{base}/admin/warehouse/stockitem/{laptop}/adjust/")
        page.check("input[name=reason][value=received]")
        page.fill("#id_quantity", "5")
        page.fill("#id_note", "delivery note 4471")
        page.click("input[type=submit]")
        # then: the product's page, read-only, with the adjustment in its history
        page.wait_for_url(f"{base}/admin/warehouse/stockitem/{laptop}/change/")
        assert "PRD001 received: +5 (on hand 15, held 3, available 12)." in page.inner_text(".messagelist")
        assert page.locator("input[name=_save]").count() == 0
        assert page.locator("a.deletelink").count() == 0
        assert "delivery note 4471" in page.inner_text("#adjustments-group")
        page.goto(f"{base}/admin/warehouse/stockitem/")
        assert figures(page, "PRD001") == ["15", "3", "12"]
        page.click("#toggle-nav-sidebar")  # the list, not the menu, for the picture
        shot(page, "stock.png")
        browser.close()
    assert errors == []

"""A customer's mail as a mail program shows it (headless Chromium, as the other browser tests):
the HTML part of the "order received" mail in Estonian, with the shop, the order number, the
lines and the total. The screenshot goes to .run/artifacts/mail.png (scripts/screenshots.py
copies it into docs/img/).
"""

from __future__ import annotations

import os

import pytest

from support.mails import mail_render, order_number
from tests.observability.test_browser import CHROMIUM, CHROMIUM_ARGS, shot

pytestmark = pytest.mark.e2e

ORDER_ID = "5f0c2a8e-41b7-4c1e-9a55-2d7e0f3b9c11"
SUMMARY = {"lines": [{"product_id": "PRD001", "name": "Sülearvuti Dell XPS 15", "quantity": 1},
                     {"product_id": "PRD003", "name": "Klaviatuur Logitech MX Keys", "quantity": 2}],
           "total": "1539.97", "currency": "EUR"}


def test_the_order_received_mail_reads_in_estonian_with_its_lines_and_total(settings):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing (make test installs Debian's chromium when run as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    # given: the mail Jaan Tamm gets when his order is placed
    mail = mail_render(status="received", order_id=ORDER_ID, shipment_id="", details={}, name="Jaan Tamm",
                       language="et", summary=SUMMARY, shipping_method="standard")
    # when: a mail program shows its HTML part
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 720, "height": 600})
        page.set_content(mail.html)
        shown = page.inner_text("body")
        shot(page, "mail.png")
        browser.close()
    # then: in Estonian, with the order number, both lines, the total and the shop's contact
    assert order_number(ORDER_ID) in mail.subject
    assert order_number(ORDER_ID) in shown
    assert "Tere" in shown
    assert "Sülearvuti Dell XPS 15" in shown
    assert "Klaviatuur Logitech MX Keys" in shown
    assert "Kokku" in shown
    assert "1539,97 EUR" in shown  # Estonian: a decimal comma
    assert settings.SHOP_NAME in shown
    assert settings.SHOP_CONTACT_EMAIL in shown

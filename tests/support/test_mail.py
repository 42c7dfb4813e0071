"""The mails customers get: plain text and HTML, an absolute tracking link, the order's lines and total."""

import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from support.services import (
    OrderSummary,
    SummaryLine,
    customer_contact_record,
    customer_tell_order_outcome,
    notifications_send,
    tracking_record_stage,
)

pytestmark = pytest.mark.django_db

SUMMARY = OrderSummary(lines=[SummaryLine("PRD001", "Laptop", 1), SummaryLine("PRD003", "Mechanical keyboard", 2)],
                       total=Decimal("1539.97"), currency="EUR")


def test_a_stage_mail_has_text_and_html_an_absolute_link_lines_and_total(settings):
    # given
    settings.SITE_URL = "https://shop.example.com"
    order_id = uuid.uuid4()
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan@example.com", summary=SUMMARY)
    tracking_record_stage(order_id=order_id, shipment_id="SHP-ABC", status="out_for_delivery",
                          message="Out for delivery", timestamp=timezone.now())
    # when
    assert notifications_send() == 1
    # then
    (sent,) = mail.outbox
    assert sent.body == (
        "Hello Jaan Tamm,\n\nOut for delivery.\n\nFollow your shipment: https://shop.example.com/track/SHP-ABC/\n"
        "\nYour order:\n  1 x Laptop (PRD001)\n  2 x Mechanical keyboard (PRD003)\nTotal: 1539.97 EUR\n")
    ((html, mimetype),) = sent.alternatives
    assert mimetype == "text/html"
    assert html.count('href="https://shop.example.com/track/SHP-ABC/"') == 2  # the text's link and the button
    assert "Mechanical keyboard" in html and "1539.97 EUR" in html
    assert "/track/" not in html.replace("https://shop.example.com/track/", "")  # no relative link


def test_an_outcome_mail_carries_the_summary_and_no_tracking_link(settings):
    order_id = uuid.uuid4()
    customer_contact_record(order_id=order_id, name="Mari", email="mari@example.com", summary=SUMMARY)
    customer_tell_order_outcome(order_id=order_id, outcome="cancelled", message="")
    notifications_send()
    (sent,) = mail.outbox
    assert "Total: 1539.97 EUR" in sent.body and "/track/" not in sent.body
    assert "Follow your shipment" not in sent.alternatives[0][0]


def test_customer_text_is_escaped_in_the_html_mail():
    order_id = uuid.uuid4()
    evil = OrderSummary(lines=[SummaryLine("PRD001", "<script>x</script>", 1)], total=Decimal("1"), currency="EUR")
    customer_contact_record(order_id=order_id, name="<b>Eve</b>", email="eve@example.com", summary=evil)
    customer_tell_order_outcome(order_id=order_id, outcome="cancelled", message="")
    notifications_send()
    html = mail.outbox[0].alternatives[0][0]
    assert "<script>" not in html and "<b>Eve" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;Eve&lt;/b&gt;" in html

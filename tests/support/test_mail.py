"""The mails customers get: who gets them, what they say, in which language, and when they leave."""

import copy
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from messaging.consumer import deliver
from messaging.envelope import Message
from messaging.models import OutboxMessage
from messaging.registry import route_for
from messaging.topology import SUPPORT_REQUESTS
from simulation.demo_data import SEED_ORDER
from support.mails import greeting_name, order_number
from support.models import CustomerNotification
from support.services import (
    OrderSummary,
    Shortage,
    SummaryLine,
    customer_contact_record,
    customer_tell_order_outcome,
    customer_tell_order_paid,
    customer_tell_order_rejected,
    notifications_send,
    tracking_record_stage,
)

pytestmark = pytest.mark.django_db

SUMMARY = OrderSummary(lines=[SummaryLine("PRD001", "Laptop", 1), SummaryLine("PRD003", "Mechanical keyboard", 2)],
                       total=Decimal("1539.97"), currency="EUR")
ORDER_ID = uuid.UUID("1a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d")
SIGNATURE = ("Kind regards,\nLogistics Shop\nQuestions? Write to help@logistics.example\n"
             "https://shop.example.com\n")


@pytest.fixture
def shop(settings):
    settings.SITE_URL = "https://shop.example.com"
    settings.SHOP_NAME = "Logistics Shop"
    settings.SHOP_CONTACT_EMAIL = "help@logistics.example"
    settings.SHOP_CONTACT_PHONE = ""
    settings.SHOP_CARRIER = "Kiirkuller"
    settings.DEFAULT_FROM_EMAIL = '"Logistics Shop" <help@logistics.example>'
    settings.DELIVERY_DAYS = {"standard": (2, 4), "express": (1, 2)}


def contact(language: str = "en", name: str = "Jaan Tamm", email: str = "jaan@example.com"):
    return customer_contact_record(order_id=ORDER_ID, name=name, email=email, summary=SUMMARY, language=language,
                                   shipping_method="standard")


def test_the_order_received_mail_names_the_shop_the_order_its_lines_and_total(shop):
    # given
    contact()
    # when
    assert notifications_send() == 1
    # then
    (sent,) = mail.outbox
    assert (sent.from_email, sent.to, sent.subject) == (
        '"Logistics Shop" <help@logistics.example>', ["jaan@example.com"], "Order 1A2B3C4D received")
    assert sent.body == (
        "Hello Jaan Tamm,\n\n"
        "Thank you for your order! We have received it and are checking that everything is in stock.\n\n"
        "We will write again when your order is confirmed and paid.\n\n"
        "Order number: 1A2B3C4D\n  1 × Laptop\n  2 × Mechanical keyboard\nTotal: 1,539.97 EUR\n\n" + SIGNATURE)
    ((html, mimetype),) = sent.alternatives
    assert mimetype == "text/html"
    assert '<html lang="en">' in html
    assert "Mechanical keyboard" in html
    assert "1,539.97 EUR" in html


def test_the_shipping_mail_has_the_carrier_the_delivery_window_and_an_absolute_tracking_link(shop):
    # given: the parcel left the warehouse on Tuesday 3 February (local time)
    contact()
    notifications_send()
    # when
    tracking_record_stage(order_id=ORDER_ID, shipment_id="SHP-ABC", status="picked_up", message="Picked up by VEH001",
                          timestamp=datetime(2026, 2, 3, 8, 15, tzinfo=UTC))
    notifications_send()
    # then
    sent = mail.outbox[1]
    assert sent.subject == "Order 1A2B3C4D is on its way"
    assert sent.body == (
        "Hello Jaan Tamm,\n\n"
        "Good news: your order has left our warehouse and is on its way to you with Kiirkuller.\n\n"
        "Expected delivery: February 5 – February 7.\n\n"
        "Order number: 1A2B3C4D\n  1 × Laptop\n  2 × Mechanical keyboard\nTotal: 1,539.97 EUR\n\n"
        "Follow your parcel: https://shop.example.com/track/SHP-ABC/\n\n" + SIGNATURE)
    html = sent.alternatives[0][0]
    assert html.count('href="https://shop.example.com/track/SHP-ABC/"') == 1
    assert "VEH001" not in sent.body + html


def test_each_step_of_an_order_has_its_own_subject(shop):
    # given
    contact()
    when = timezone.now()
    # when
    customer_tell_order_paid(order_id=ORDER_ID)
    for stage in ("vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"):
        tracking_record_stage(order_id=ORDER_ID, shipment_id="SHP-ABC", status=stage, message=stage, timestamp=when)
    notifications_send()
    # then: the stages a customer waits for, not every internal step
    assert [m.subject for m in mail.outbox] == [
        "Order 1A2B3C4D received", "Order 1A2B3C4D is paid and confirmed", "Order 1A2B3C4D is on its way",
        "Order 1A2B3C4D is out for delivery today", "Order 1A2B3C4D has been delivered"]
    assert "Your order is out for delivery today with Kiirkuller." in mail.outbox[3].body
    assert "Total:" not in mail.outbox[4].body  # delivered: no lines


def test_a_rejected_order_is_told_why_in_words(shop):
    # given
    contact()
    # when
    customer_tell_order_rejected(order_id=ORDER_ID, message="insufficient stock: PRD001",
                                 unavailable=[Shortage(product_id="PRD001", requested=1, available=0)])
    notifications_send()
    # then
    sent = mail.outbox[1]
    assert sent.subject == "We could not accept order 1A2B3C4D"
    assert "  - Laptop: you ordered 1, we have 0\n" in sent.body
    assert "Nothing has been charged." in sent.body


def test_cancelled_and_failed_payment_mails_carry_the_summary_and_no_tracking_link(shop):
    contact()
    customer_tell_order_outcome(order_id=ORDER_ID, outcome="cancelled", message="cancelled by the customer")
    notifications_send()
    sent = mail.outbox[1]
    assert sent.subject == "Order 1A2B3C4D is cancelled"
    assert "Total: 1,539.97 EUR" in sent.body
    assert "/track/" not in sent.body
    assert "Follow your parcel" not in sent.alternatives[0][0]


def test_an_estonian_customer_reads_estonian_with_local_formats(shop):
    # given
    contact(language="et")
    # when
    tracking_record_stage(order_id=ORDER_ID, shipment_id="SHP-ABC", status="picked_up", message="Picked up",
                          timestamp=datetime(2026, 2, 3, 8, 15, tzinfo=UTC))
    notifications_send()
    # then
    received, shipped = mail.outbox
    assert received.subject == "Tellimus 1A2B3C4D on kätte saadud"
    assert received.body.startswith("Tere, Jaan Tamm!\n\nAitäh tellimuse eest!")
    assert "Kokku: 1539,97 EUR" in received.body
    assert shipped.subject == "Tellimus 1A2B3C4D on teel"
    assert "Eeldatav kättetoimetamine: 5. veebruar – 7. veebruar." in shipped.body
    assert '<html lang="et">' in shipped.alternatives[0][0]
    assert CustomerNotification.objects.get(status="picked_up").subject == "Tellimus 1A2B3C4D on teel"


@pytest.mark.parametrize(("name", "greeted"), [
    ("Jaan Tamm", "Jaan Tamm"),
    ("Mari-Liis O'Neil", "Mari-Liis O'Neil"),
    ("Win a prize at https://evil.example/x now", "Win a prize at now"),
    ("visit evil.example or www.evil.example", "visit or"),
    ("<a href='http://evil.example'>click</a>", "a"),
    ("mail me: eve@evil.example", "mail me"),
    ("x" * 200, "x" * 40),
    ("Jüri Õun " * 10, "Jüri Õun Jüri Õun Jüri Õun Jüri Õun"),
    ("http://evil.example", ""),
])
def test_the_greeting_carries_no_link_of_the_senders(name, greeted):
    assert greeting_name(name) == greeted


def test_a_name_that_was_only_a_link_greets_without_a_name(shop):
    contact(name="https://evil.example/win")
    notifications_send()
    assert mail.outbox[0].body.startswith("Hello,\n\nThank you for your order!")
    assert "evil" not in mail.outbox[0].body + mail.outbox[0].alternatives[0][0]


def test_customer_text_is_escaped_in_the_html_mail():
    order_id = uuid.uuid4()
    evil = OrderSummary(lines=[SummaryLine("PRD001", "<script>x</script>", 1)], total=Decimal("1"), currency="EUR")
    customer_contact_record(order_id=order_id, name="<b>Eve</b>", email="eve@example.com", summary=evil)
    notifications_send()
    html = mail.outbox[0].alternatives[0][0]
    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;script&gt;" in html


# --- when mails leave ----------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_mail_leaves_right_after_its_cause_commits_and_only_once(shop):
    # given: a stage written inside a transaction that has not committed yet
    contact()
    mail.outbox.clear()
    with transaction.atomic():
        tracking_record_stage(order_id=ORDER_ID, shipment_id="SHP-ABC", status="delivered", message="Delivered",
                              timestamp=timezone.now())
        # then: nothing leaves before the commit
        assert mail.outbox == []
    # when: committed -- then mailed at once, by the writer, without the schedule
    assert [m.subject for m in mail.outbox] == ["Order 1A2B3C4D has been delivered"]
    notification = CustomerNotification.objects.get(status="delivered")
    assert (notification.sent_at - notification.created_at).total_seconds() < 2
    # and the schedule's backstop finds nothing left to mail
    assert notifications_send() == 0
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_transaction_that_rolls_back_mails_nothing(shop):
    contact()
    mail.outbox.clear()
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the raise rolls the transaction back
        customer_tell_order_paid(order_id=ORDER_ID)
        raise RuntimeError("the handler failed")
    assert mail.outbox == []
    assert not CustomerNotification.objects.filter(status="paid").exists()


def outbox_to_support(order_id: str, type_: str) -> Message:
    row = OutboxMessage.objects.get(correlation_id=order_id, type=type_)
    return Message(queue=SUPPORT_REQUESTS, message_id=str(row.message_id), type=row.type,
                   correlation_id=row.correlation_id, causation_id="", payload=row.payload)


@pytest.mark.django_db(transaction=True)
def test_placing_and_cancelling_with_a_strangers_address_mails_only_the_accounts_own(shop, catalogue, make_customer):
    # given: an account, and an order whose body names a stranger and a link
    _customer, client = make_customer(email="account.owner@example.com")
    body = copy.deepcopy(SEED_ORDER)
    body["customer"] = {"name": "Visit https://evil.example/win now", "email": "stranger@example.net"}
    order_id = client.post("/api/orders/", body, format="json").json()["order_id"]
    assert client.post(f"/api/orders/{order_id}/cancel/").status_code == 200
    # when: customer service receives order.placed and order.cancelled
    for type_ in ("order.placed", "order.cancelled"):
        deliver(route_for(SUPPORT_REQUESTS), outbox_to_support(order_id, type_))
    # then: both mails went, at once, to the account's own address only, greeting without the link
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["account.owner@example.com"], f"Tellimus {order_number(order_id)} on kätte saadud"),  # shipped to Estonia
        (["account.owner@example.com"], f"Tellimus {order_number(order_id)} on tühistatud")]
    everything = "".join(m.body + m.alternatives[0][0] + " ".join(m.to + m.cc + m.bcc) for m in mail.outbox)
    assert "stranger" not in everything
    assert "evil" not in everything
    assert mail.outbox[0].body.startswith("Tere, Visit now!")

"""Customer service's own copy of the customer's contact, and whom its notifications go to.

The contact (``order.placed``, on support_requests) and the stages (``shipment.status_changed``,
on delivery_updates) come on different queues, in any order.
"""

import threading
import time
import uuid

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from support.mails import order_number
from support.models import CustomerContact, CustomerNotification
from support.services import (
    customer_contact_record,
    customer_tell_order_outcome,
    notifications_send,
    tracking_record_stage,
)

pytestmark = pytest.mark.django_db


def stage(order_id, status: str = "picked_up", shipment_id: str = "SHP-1"):
    return tracking_record_stage(order_id=order_id, shipment_id=shipment_id, status=status, message="Picked up",
                                 timestamp=timezone.now())


def test_a_stage_before_the_contact_is_mailed_to_the_contact_once_it_arrives():
    # given: a stage arrives before the order's contact
    order_id = uuid.uuid4()
    stage(order_id)
    before = notifications_send()
    # when
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    after = notifications_send()
    # then: nothing was mailed without an address; then once, to the contact, by name (with
    # the order's "received", which the contact brings)
    assert (before, after) == (0, 2)
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["jaan.tamm@example.com"], f"Order {order_number(order_id)} is on its way"),
        (["jaan.tamm@example.com"], f"Order {order_number(order_id)} received")]
    assert mail.outbox[0].body.startswith("Hello Jaan Tamm,\n\nGood news: your order has left our warehouse")
    notification = CustomerNotification.objects.get(order_id=order_id, status="picked_up")
    assert (notification.recipient, notification.sent_at is not None) == ("jaan.tamm@example.com", True)


def test_an_outcome_before_the_contact_is_mailed_to_the_contact_once_it_arrives():
    # given
    order_id = uuid.uuid4()
    customer_tell_order_outcome(order_id=order_id, outcome="cancelled", message="")
    # when
    customer_contact_record(order_id=order_id, name="Mari Maasikas", email="mari@example.com")
    sent = notifications_send()
    # then
    assert sent == 2
    assert [m.to for m in mail.outbox] == [["mari@example.com"]] * 2
    assert mail.outbox[0].body.startswith("Hello Mari Maasikas,\n\nYour order has been cancelled as you asked.")


def test_a_stage_after_the_contact_is_addressed_at_once():
    # given
    order_id = uuid.uuid4()
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    # when
    stage(order_id)
    # then
    notification = CustomerNotification.objects.get(order_id=order_id, status="picked_up")
    assert notification.recipient == "jaan.tamm@example.com"
    assert notification.subject == f"Order {order_number(order_id)} is on its way"


def test_the_contact_arriving_twice_changes_nothing():
    # given: the contact, a stage told to it, and the mail sent
    order_id = uuid.uuid4()
    first = customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    stage(order_id)
    notifications_send()
    stage(order_id, status="out_for_delivery")
    # when: the contact again (a re-driven message), even with other data
    again = customer_contact_record(order_id=order_id, name="Someone Else", email="else@example.com")
    notifications_send()
    # then
    assert CustomerContact.objects.count() == 1
    contact = CustomerContact.objects.get()
    assert (contact.name, contact.email, contact.received_at) == ("Jaan Tamm", "jaan.tamm@example.com",
                                                                   first.received_at)
    assert again.pk == first.pk
    assert [m.to for m in mail.outbox] == [["jaan.tamm@example.com"]] * 3  # received, picked up, out for delivery
    assert set(CustomerNotification.objects.values_list("recipient", flat=True)) == {"jaan.tamm@example.com"}


def test_a_contact_without_an_email_leaves_its_notifications_unmailed():
    # given
    order_id = uuid.uuid4()
    stage(order_id)
    # when
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="")
    # then
    assert notifications_send() == 0
    assert list(CustomerNotification.objects.order_by("pk").values_list("status", "recipient")) == [
        ("picked_up", ""), ("received", "")]


def test_an_outcome_is_told_once():
    # given
    order_id = uuid.uuid4()
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    # when
    first = customer_tell_order_outcome(order_id=order_id, outcome="payment_failed",
                                        message="payment declined: insufficient funds")
    second = customer_tell_order_outcome(order_id=order_id, outcome="payment_failed",
                                         message="payment declined: insufficient funds")
    # then
    assert first.pk == second.pk
    assert notifications_send() == 2  # received, payment failed
    assert mail.outbox[1].subject == f"Payment for order {order_number(order_id)} did not go through"
    assert "Your card was declined, so we could not take payment for your order." in mail.outbox[1].body


@pytest.mark.django_db(transaction=True)
def test_a_contact_arriving_while_a_stage_is_being_written_still_addresses_it():
    # given: a first stage told before the contact came, then a worker that writes the next
    # stage (no address yet either) and holds its transaction open while the contact arrives
    order_id = uuid.uuid4()
    stage(order_id, status="picked_up")
    written, contact_started = threading.Event(), threading.Event()
    errors = []

    def stage_worker():
        try:
            with transaction.atomic():
                stage(order_id, status="out_for_delivery")
                written.set()
                contact_started.wait(5)
                time.sleep(0.3)  # the contact now waits for this transaction
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def contact_worker():
        contact_started.set()
        try:
            customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when
    first = threading.Thread(target=stage_worker)
    first.start()
    written.wait(5)
    second = threading.Thread(target=contact_worker)
    second.start()
    first.join(10)
    second.join(10)
    # then
    assert errors == []
    addressed = list(CustomerNotification.objects.filter(order_id=order_id).order_by("pk")
                     .values_list("status", "recipient"))
    assert addressed == [("picked_up", "jaan.tamm@example.com"), ("out_for_delivery", "jaan.tamm@example.com"),
                         ("received", "jaan.tamm@example.com")]
    assert CustomerContact.objects.filter(order_id=order_id).count() == 1

import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from support.mails import order_number
from support.models import CustomerNotification, TrackingRecord
from support.services import (
    NOTIFICATION_SEND_ATTEMPTS,
    customer_contact_record,
    notifications_send,
    tracking_record_stage,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Order:
    id: uuid.UUID


@pytest.fixture
def order(db) -> Order:
    """An order whose contact customer service has received (``order.placed``)."""
    order = Order(id=uuid.uuid4())
    customer_contact_record(order_id=order.id, name="Jaan Tamm", email="jaan.tamm@example.com")
    return order


def test_each_stage_is_recorded_and_told_once(order):
    # given
    when = timezone.now()
    # when: the same stage arrives twice, and the scheduler's mail outbox runs twice
    first = tracking_record_stage(order_id=order.id, shipment_id="SHP-1", status="picked_up",
                                  message="Picked up", timestamp=when)
    second = tracking_record_stage(order_id=order.id, shipment_id="SHP-1", status="picked_up",
                                   message="Picked up", timestamp=when)
    sent = [notifications_send(), notifications_send()]
    # then
    assert first is not None
    assert second is None
    assert CustomerNotification.objects.filter(order_id=order.id, status="picked_up").count() == 1
    assert OutboxMessage.objects.filter(queue="customer_notifications").count() == 1
    assert sent == [2, 0]  # the order received, and the stage
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["jaan.tamm@example.com"], f"Order {order_number(order.id)} received"),
        (["jaan.tamm@example.com"], f"Order {order_number(order.id)} is on its way")]
    assert CustomerNotification.objects.get(status="picked_up").sent_at is not None


def test_stages_out_of_order_are_each_recorded_once_and_the_status_never_goes_back(order):
    # given
    when = timezone.now()
    stages = ["vehicle_assigned", "in_transit", "picked_up", "in_transit", "vehicle_assigned", "delivered"]
    # when
    recorded = [tracking_record_stage(order_id=order.id, shipment_id="SHP-2", status=stage, message=stage,
                                      timestamp=when) is not None for stage in stages]
    # then
    assert recorded == [True, True, True, False, False, True]
    record = TrackingRecord.objects.get(shipment_id="SHP-2")
    assert record.status == "delivered"
    assert sorted(record.entries.values_list("status", flat=True)) == sorted(
        ["vehicle_assigned", "in_transit", "picked_up", "delivered"])
    # the customer hears of the stages that matter to them, once each
    assert set(CustomerNotification.objects.filter(order_id=order.id).values_list("status", flat=True)) == {
        "received", "picked_up", "delivered"}
    assert OutboxMessage.objects.filter(type="customer.notified", correlation_id=order.id).count() == 4


def test_the_status_stays_at_the_highest_stage_when_a_lower_one_arrives_late(order):
    # given
    when = timezone.now()
    tracking_record_stage(order_id=order.id, shipment_id="SHP-3", status="in_transit", message="m", timestamp=when)
    # when
    tracking_record_stage(order_id=order.id, shipment_id="SHP-3", status="picked_up", message="m", timestamp=when)
    # then
    assert TrackingRecord.objects.get(shipment_id="SHP-3").status == "in_transit"


class FlakyMailBackend(BaseEmailBackend):
    """Refuses the first ``failures`` mails, then delivers into django.core.mail.outbox."""

    failures = 0

    def send_messages(self, messages):
        for message in messages:
            if FlakyMailBackend.failures > 0:
                FlakyMailBackend.failures -= 1
                raise ConnectionRefusedError("mail server refused")
            mail.outbox.append(message)
        return len(messages)


def test_a_mail_that_fails_is_tried_again_after_its_back_off_and_others_are_not_held_up(order, settings):
    # given: two notifications, and a mail server that refuses the first mail
    notifications_send()  # the order's "received"
    settings.EMAIL_BACKEND = f"{__name__}.FlakyMailBackend"
    FlakyMailBackend.failures = 1
    when = timezone.now()
    for stage in ("picked_up", "out_for_delivery"):
        tracking_record_stage(order_id=order.id, shipment_id="SHP-4", status=stage, message=stage, timestamp=when)
    # when
    first_tick = notifications_send()
    right_after = notifications_send()
    failed = CustomerNotification.objects.get(status="picked_up")
    CustomerNotification.objects.filter(pk=failed.pk).update(next_send_at=timezone.now())  # its back-off is over
    after_back_off = notifications_send()
    # then
    assert (first_tick, right_after, after_back_off) == (1, 0, 1)
    assert (failed.send_attempts, "refused" in failed.last_send_error) == (1, True)
    assert [m.subject for m in mail.outbox[1:]] == [
        f"Order {order_number(order.id)} is out for delivery today", f"Order {order_number(order.id)} is on its way"]
    assert not CustomerNotification.objects.filter(sent_at__isnull=True).exists()


def test_a_mail_server_that_is_away_loses_nothing(order, settings):
    # given
    notifications_send()  # the order's "received"
    mail.outbox.clear()
    settings.EMAIL_BACKEND = f"{__name__}.FlakyMailBackend"
    FlakyMailBackend.failures = 10 ** 6
    tracking_record_stage(order_id=order.id, shipment_id="SHP-5", status="picked_up", message="m",
                          timestamp=timezone.now())
    # when: it keeps failing until the attempts run out
    for _ in range(NOTIFICATION_SEND_ATTEMPTS + 2):
        CustomerNotification.objects.update(next_send_at=None)
        notifications_send()
    # then: still there, unsent, with why
    notification = CustomerNotification.objects.get(status="picked_up")
    assert (notification.sent_at, notification.send_attempts) == (None, NOTIFICATION_SEND_ATTEMPTS)
    assert "refused" in notification.last_send_error
    assert mail.outbox == []
    FlakyMailBackend.failures = 0


def test_public_tracking_shows_events_oldest_first_and_no_personal_data(order):
    # given
    base = timezone.now()
    for i, stage in enumerate(["vehicle_assigned", "picked_up", "in_transit"]):
        tracking_record_stage(order_id=order.id, shipment_id="SHP-ABC", status=stage, message=f"m{i}",
                              timestamp=base + timezone.timedelta(seconds=i))
    # when
    response = APIClient().get("/api/tracking/SHP-ABC/")
    page = APIClient().get("/track/SHP-ABC/")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["shipment_id"] == "SHP-ABC"
    assert body["status"] == "in_transit"
    assert [e["status"] for e in body["events"]] == ["vehicle_assigned", "picked_up", "in_transit"]
    text = response.content.decode() + page.content.decode()
    for personal in ("Jaan", "Tamm", "jaan.tamm", str(order.id)):
        assert personal not in text
    assert page.status_code == 200
    assert "On its way" in page.content.decode()


def test_unknown_shipment_is_404():
    assert APIClient().get(f"/api/tracking/SHP-{uuid.uuid4().hex}/").status_code == 404
    assert APIClient().get("/track/SHP-NOPE/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_first_stages_of_one_shipment_at_once_make_one_record_with_both(order):
    # given: an order, and two workers recording different first stages of its new shipment
    first_written, second_started = threading.Event(), threading.Event()
    errors = []

    def record(stage, hold):
        try:
            with transaction.atomic():
                tracking_record_stage(order_id=order.id, shipment_id="SHP-RACE", status=stage, message=stage,
                                      timestamp=timezone.now())
                if hold:  # keep the new record uncommitted while the other worker arrives
                    first_written.set()
                    second_started.wait(5)
                    time.sleep(0.3)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when
    holder = threading.Thread(target=record, args=("vehicle_assigned", True))
    holder.start()
    first_written.wait(5)
    late = threading.Thread(target=lambda: (second_started.set(), record("picked_up", False)))
    late.start()
    holder.join(10)
    late.join(10)
    # then: one record, both stages, the higher one its status
    assert errors == []
    record_ = TrackingRecord.objects.get(shipment_id="SHP-RACE")
    assert record_.status == "picked_up"
    assert sorted(record_.entries.values_list("status", flat=True)) == ["picked_up", "vehicle_assigned"]
    assert set(CustomerNotification.objects.filter(order_id=order.id).values_list("status", flat=True)) == {
        "received", "picked_up"}

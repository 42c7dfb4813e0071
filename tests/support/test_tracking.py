import uuid

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop.services import Contact, OrderItem, order_place
from support.models import CustomerNotification
from support.services import tracking_record_stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(catalogue, make_customer):
    customer, _ = make_customer()
    return order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                       shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                       items=[OrderItem(product_id="PRD002", quantity=1)], shipping_method="express",
                       payment_method="credit_card")


def test_each_stage_is_recorded_and_told_once(order, django_capture_on_commit_callbacks):
    # given
    when = timezone.now()
    # when: the same stage arrives twice
    with django_capture_on_commit_callbacks(execute=True):
        first = tracking_record_stage(order_id=order.id, shipment_id="SHP-1", status="picked_up",
                                      message="Picked up", timestamp=when)
        second = tracking_record_stage(order_id=order.id, shipment_id="SHP-1", status="picked_up",
                                       message="Picked up", timestamp=when)
    # then
    assert first is not None and second is None
    assert CustomerNotification.objects.filter(order_id=order.id).count() == 1
    assert OutboxMessage.objects.filter(queue="customer_notifications").count() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["jaan.tamm@example.com"]
    assert "picked up" in mail.outbox[0].subject.lower()
    assert CustomerNotification.objects.get().sent_at is not None


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
    assert body["shipment_id"] == "SHP-ABC" and body["status"] == "in_transit"
    assert [e["status"] for e in body["events"]] == ["vehicle_assigned", "picked_up", "in_transit"]
    text = response.content.decode() + page.content.decode()
    for personal in ("Jaan", "Tamm", "jaan.tamm", "Narva", str(order.id)):
        assert personal not in text
    assert page.status_code == 200 and "In transit" in page.content.decode()


def test_unknown_shipment_is_404():
    assert APIClient().get(f"/api/tracking/SHP-{uuid.uuid4().hex}/").status_code == 404
    assert APIClient().get("/track/SHP-NOPE/").status_code == 404

"""The admin shows what messages wrote, read-only; its one action calls a service."""

import uuid

import pytest
from django.utils import timezone

from support.models import CustomerContact, CustomerNotification, TrackingEntry, TrackingRecord
from support.services import customer_contact_record, tracking_record_stage

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def written():
    """What messages wrote: a contact, a tracking record with its entry, a notification."""
    order_id = uuid.uuid4()
    customer_contact_record(order_id=order_id, name="Jaan Tamm", email="jaan.tamm@example.com")
    tracking_record_stage(order_id=order_id, shipment_id="SHP-ADM", status="picked_up", message="Picked up",
                          timestamp=timezone.now())
    return order_id


@pytest.mark.parametrize("model", [TrackingRecord, CustomerContact, CustomerNotification])
def test_what_messages_wrote_is_shown_but_cannot_be_added_changed_or_deleted(staff, written, model):
    # given
    row = model.objects.order_by("pk").last()
    base = f"/admin/support/{model._meta.model_name}/"
    # when
    listed = staff.get(base)
    shown = staff.get(f"{base}{row.pk}/change/")
    added = staff.get(f"{base}add/")
    changed = staff.post(f"{base}{row.pk}/change/", {"status": "delivered", "name": "X", "recipient": "x@x.ee"})
    deleted = staff.post(f"{base}{row.pk}/delete/", {"post": "yes"})
    # then
    assert (listed.status_code, shown.status_code) == (200, 200)
    assert (added.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    assert model.objects.count() == (2 if model is CustomerNotification else 1)  # received, picked_up
    assert TrackingEntry.objects.count() == 1
    assert TrackingRecord.objects.get().status == "picked_up"
    assert CustomerContact.objects.get().name == "Jaan Tamm"


def test_mail_again_gives_a_given_up_notification_a_fresh_set_of_attempts(staff, written):
    # given: a notification whose attempts ran out
    notification = CustomerNotification.objects.get(status="picked_up")
    CustomerNotification.objects.filter(pk=notification.pk).update(
        send_attempts=6, next_send_at=timezone.now(), last_send_error="refused")
    # when
    response = staff.post("/admin/support/customernotification/",
                          {"action": "mail_again", "_selected_action": [notification.pk]})
    # then
    assert response.status_code == 302
    notification.refresh_from_db()
    assert (notification.send_attempts, notification.next_send_at, notification.last_send_error) == (0, None, "")


def test_the_admin_follows_the_staffs_browser_language(client):
    # when
    estonian = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="et")
    english = client.get("/admin/login/", HTTP_ACCEPT_LANGUAGE="en")
    # then: Django's own Estonian
    assert estonian.status_code == english.status_code == 200
    assert '<html lang="et"' in estonian.content.decode()
    assert 'value="Sisene"' in estonian.content.decode()
    assert '<html lang="en"' in english.content.decode()
    assert 'value="Log in"' in english.content.decode()

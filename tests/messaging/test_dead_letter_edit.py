"""Dead letters edited before a re-drive: checked against the contract, every edit and re-drive in the trail."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import pytest
from django.test import Client

from config.errors import DomainError
from messaging.envelope import InvalidMessage, decode
from messaging.models import DeadLetter, DeadLetterChange, OutboxMessage
from messaging.services import dead_letter_edit, dead_letters_redrive

pytestmark = pytest.mark.django_db

ORDER = str(uuid.uuid4())
VALID = {"order_id": ORDER, "shipment_id": "SHP-EDIT1", "status": "picked_up", "message": "Picked up",
         "timestamp": "2026-12-01T10:00:00+00:00"}


def parked(body: dict | str, *, type: str = "customer.notified", queue: str = "customer_notifications") -> DeadLetter:
    return DeadLetter.objects.create(queue=queue, message_id=str(uuid.uuid4()), type=type, correlation_id=ORDER,
                                     body=body if isinstance(body, str) else json.dumps(body),
                                     reason=DeadLetter.Reason.INVALID, error="invalid customer.notified payload")


def staff_client(django_user_model, *, username: str = "ops") -> Client:
    user = django_user_model.objects.create_user(username, password="pw-dead-1", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_an_edit_that_keeps_the_contract_is_saved_and_recorded():
    # given: parked because the status was unknown
    letter = parked({**VALID, "status": "teleported"})
    before = letter.body
    # when
    dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps(VALID), by="mari")
    # then
    letter.refresh_from_db()
    assert json.loads(letter.body)["status"] == "picked_up"
    (change,) = letter.changes.all()
    assert (change.action, change.by, change.body_before, change.body_after) == ("edited", "mari", before, letter.body)


@pytest.mark.parametrize(("body", "says"), [
    ("{not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({**VALID, "status": "teleported"}), "breaks the customer.notified contract: status"),
    (json.dumps({k: v for k, v in VALID.items() if k != "order_id"}), "order_id"),
])
def test_an_edit_that_breaks_the_contract_is_refused_and_changes_nothing(body, says):
    # given
    letter = parked({**VALID, "status": "teleported"})
    # when
    with pytest.raises(DomainError, match=says) as refused:
        dead_letter_edit(dead_letter_id=letter.pk, body=body, by="mari")
    # then
    assert refused.value.field == "body"
    assert DeadLetter.objects.get(pk=letter.pk).body == letter.body
    assert not DeadLetterChange.objects.exists()


def test_a_redriven_letter_is_no_longer_edited_and_its_redrive_is_in_the_trail():
    # given
    letter = parked(VALID)
    # when
    count, problems = dead_letters_redrive(dead_letter_ids=[letter.pk], by="mari")
    # then
    assert (count, problems) == (1, [])
    assert list(letter.changes.values_list("action", "by")) == [("redriven", "mari")]
    with pytest.raises(DomainError, match="re-driven already"):
        dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps(VALID), by="mari")
    assert OutboxMessage.objects.get(producer="redrive").payload == VALID


def test_staff_edit_and_redrive_through_the_admin_and_see_the_trail(django_user_model):
    # given
    letter = parked({**VALID, "status": "teleported"})
    client = staff_client(django_user_model)
    page = f"/admin/messaging/deadletter/{letter.pk}/payload/"
    # when: a body that breaks the contract
    refused = client.post(page, {"body": json.dumps({**VALID, "status": "lost"})})
    # then: the form again with the reason; nothing saved
    assert refused.status_code == 200
    assert "breaks the customer.notified contract" in refused.content.decode()
    assert not DeadLetterChange.objects.exists()
    # when: a good one, then the re-drive action
    saved = client.post(page, {"body": json.dumps(VALID)})
    assert saved.status_code == 302
    client.post("/admin/messaging/deadletter/", {"action": "redrive", "_selected_action": [letter.pk]})
    # then: the letter's page shows both steps, by whom
    shown = client.get(f"/admin/messaging/deadletter/{letter.pk}/change/").content.decode()
    assert "payload edited" in shown
    assert "re-driven" in shown
    assert "ops" in shown
    assert list(DeadLetterChange.objects.values_list("action", flat=True)) == ["edited", "redriven"]
    assert OutboxMessage.objects.get(producer="redrive").payload["status"] == "picked_up"


def test_the_dead_letter_list_filters_by_queue_type_error_and_time(django_user_model):
    # given
    parked(VALID)
    DeadLetter.objects.create(queue="new_orders", message_id="m-2", type="order.placed", body="{}",
                              reason=DeadLetter.Reason.FAILED, error="deadlock detected")
    client = staff_client(django_user_model)
    # when / then
    by_type = client.get("/admin/messaging/deadletter/", {"type": "order.placed"}).content.decode()
    by_error = client.get("/admin/messaging/deadletter/", {"q": "deadlock"}).content.decode()
    by_queue = client.get("/admin/messaging/deadletter/", {"queue": "customer_notifications"}).content.decode()
    by_time = client.get("/admin/messaging/deadletter/", {"created_at__year": "1999"}).content.decode()
    assert "invalid customer.notified payload" in by_queue
    assert "deadlock detected" not in by_queue
    assert "deadlock detected" in by_error
    assert "invalid customer.notified payload" not in by_error
    assert "deadlock detected" in by_type
    assert "invalid customer.notified payload" not in by_type
    assert "deadlock detected" not in by_time
    assert "invalid customer.notified payload" not in by_time


def test_someone_without_the_change_permission_cannot_edit(django_user_model):
    # given
    letter = parked(VALID)
    viewer = django_user_model.objects.create_user("viewer", password="pw-dead-2", is_staff=True)
    client = Client()
    client.force_login(viewer)
    # when
    response = client.post(f"/admin/messaging/deadletter/{letter.pk}/payload/", {"body": json.dumps(VALID)})
    # then
    assert response.status_code == 403
    assert not DeadLetterChange.objects.exists()


DEEP = '{"order_id": "' + ORDER + '", "extra": ' + "[" * 5000 + "]" * 5000 + "}"


def test_a_letter_5000_levels_deep_is_shown_refused_and_not_redriven_without_a_500(django_user_model):
    # given: a body 5,000 levels deep, parked from the broker
    letter = parked(DEEP)
    client = staff_client(django_user_model)
    url = f"/admin/messaging/deadletter/{letter.pk}/payload/"
    # when
    page = client.get(url)
    change = client.get(f"/admin/messaging/deadletter/{letter.pk}/change/")
    edit = client.post(url, {"body": DEEP})
    redrive = client.post("/admin/messaging/deadletter/", {"action": "redrive", "_selected_action": [letter.pk]},
                          follow=True)
    # then: shown as it came, the edit refused naming the depth, the re-drive left it parked
    assert (page.status_code, change.status_code, edit.status_code) == (200, 200, 200)
    assert "[[[[[[" in page.content.decode()
    assert "the payload is nested deeper than 32 levels" in edit.content.decode()
    assert redrive.status_code == 200
    assert f"#{letter.pk} body is JSON nested deeper than 32 levels; edit it before re-driving" in [
        str(m) for m in redrive.context["messages"]]
    assert DeadLetter.objects.get(pk=letter.pk).redriven_at is None
    assert not OutboxMessage.objects.exists()
    assert not DeadLetterChange.objects.exists()


def test_a_message_5000_levels_deep_from_the_broker_is_invalid_at_once():
    # given / when
    properties = SimpleNamespace(message_id="m-1", type="customer.notified", correlation_id=ORDER, headers={})
    # then: parked as invalid on the first delivery, not retried as if it were a passing failure
    with pytest.raises(InvalidMessage, match="nested deeper than 32 levels"):
        decode("customer_notifications", properties, DEEP.encode())


@pytest.mark.parametrize(("field", "value"), [("order_id", str(uuid.uuid4())), ("shipment_id", "SHP-SOMEONE-ELSES")])
def test_an_edit_may_not_change_what_the_message_is_about(field, value):
    # given: a parked notification about ORDER's shipment SHP-EDIT1
    letter = parked({**VALID, "status": "teleported"})
    # when: the edit mends the status and re-aims the message
    with pytest.raises(DomainError) as refused:
        dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps({**VALID, field: value}), by="mari")
    # then
    assert refused.value.message.startswith(f"{field} may not change")
    assert DeadLetter.objects.get(pk=letter.pk).body == letter.body
    assert not DeadLetterChange.objects.exists()


def test_a_cancellation_cannot_be_re_aimed_at_another_order_even_from_a_body_that_is_no_json():
    # given: an order.cancelled parked with a broken body; its correlation id names its order
    letter = parked("{broken", type="order.cancelled", queue="payment_requests")
    other_order = str(uuid.uuid4())
    # when / then
    with pytest.raises(DomainError, match=f"order_id may not change \\(the message is about order_id {ORDER}\\)"):
        dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps({"order_id": other_order}), by="mari")
    dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps({"order_id": ORDER, "message": "x"}), by="mari")


@pytest.mark.parametrize(("change", "says"), [
    ({"amount": "0.00"}, "amount: Input should be greater than 0"),
    ({"amount": "-5.00"}, "amount: Input should be greater than 0"),
    ({"amount": "10000000000.00"}, "amount: Decimal input should have no more than 10 digits before the decimal point"),
    ({"currency": "XXX"}, "currency: Input should be 'EUR'"),
    ({"method": "cash_in_envelope"}, "method: Input should be 'credit_card' or 'card_declined'"),
    ({"request_number": 2**70}, "request_number: Input should be less than or equal to 2147483647"),
    ({"request_number": 0}, "request_number: Input should be greater than or equal to 1"),
], ids=["zero", "negative", "past the order total's limit", "currency", "method", "huge number", "zero number"])
def test_a_payment_request_edit_is_checked_against_bounds(change, says):
    # given: a parked payment.requested for ORDER
    good = {"order_id": ORDER, "request_number": 1, "amount": "10.00", "currency": "EUR", "method": "credit_card"}
    letter = parked({**good, "amount": "oops"}, type="payment.requested", queue="payment_requests")
    # when / then
    with pytest.raises(DomainError, match=f"breaks the payment.requested contract: {says}"):
        dead_letter_edit(dead_letter_id=letter.pk, body=json.dumps({**good, **change}), by="mari")
    assert not DeadLetterChange.objects.exists()

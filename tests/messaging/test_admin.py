"""The admin shows what messages wrote, read-only; dead letters are re-driven by an action."""

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from messaging.models import DeadLetter, OutboxMessage, ProcessedMessage

pytestmark = pytest.mark.django_db


def staff_client(*, superuser: bool = True, permissions: tuple[str, ...] = ()) -> Client:
    user = get_user_model().objects.create_user(f"ops-{uuid.uuid4().hex[:6]}", password="x", is_staff=True,
                                                is_superuser=superuser)
    user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(user)
    return client


def test_outbox_rows_and_processed_records_cannot_be_added_changed_or_deleted():
    # given
    row = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={})
    record = ProcessedMessage.objects.create(consumer="warehouse.new_orders", message_id="m-1")
    admin = staff_client()
    # when / then: shown, never edited
    for url, pk in (("/admin/messaging/outboxmessage/", row.pk), ("/admin/messaging/processedmessage/", record.pk)):
        assert admin.get(url).status_code == 200
        detail = admin.get(f"{url}{pk}/change/")
        assert detail.status_code == 200
        assert (detail.context["has_change_permission"], detail.context["has_delete_permission"]) == (False, False)
        assert admin.get(f"{url}add/").status_code == 403
        assert admin.get(f"{url}{pk}/delete/").status_code == 403
        assert admin.post(f"{url}{pk}/change/", {"type": "changed"}).status_code == 403
    assert OutboxMessage.objects.get(pk=row.pk).type == "t"


def test_the_outbox_lists_the_rows_waiting_and_the_rows_published():
    # given
    waiting = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={})
    published = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={},
                                             published_at=timezone.now())
    admin = staff_client()
    # when
    shown = {}
    for state in ("waiting", "published"):
        response = admin.get("/admin/messaging/outboxmessage/", {"relay": state})
        assert response.status_code == 200
        shown[state] = [row.pk for row in response.context["cl"].result_list]
    # then
    assert shown == {"waiting": [waiting.pk], "published": [published.pk]}


def parked() -> DeadLetter:
    order_id = str(uuid.uuid4())
    return DeadLetter.objects.create(
        queue="customer_notifications", message_id=str(uuid.uuid4()), type="customer.notified",
        correlation_id=order_id, body=json.dumps({"order_id": order_id}), reason=DeadLetter.Reason.FAILED,
        error="OperationalError", attempts=4,
    )


def test_a_dead_letter_is_redriven_by_the_action_only_by_staff_who_may_change_dead_letters():
    # given
    letter = parked()
    action = {"action": "redrive", "_selected_action": [str(letter.pk)], "index": "0"}
    viewer = staff_client(superuser=False, permissions=("view_deadletter",))
    # when: someone who may only look
    refused = viewer.post("/admin/messaging/deadletter/", action)
    # then: nothing is sent (the action is not offered)
    assert refused.status_code == 200
    assert not OutboxMessage.objects.exists()
    # when: someone who may change dead letters
    operator = staff_client(superuser=False, permissions=("view_deadletter", "change_deadletter"))
    response = operator.post("/admin/messaging/deadletter/", action, follow=True)
    # then: one copy through the outbox; the letter itself cannot be edited
    assert "1 message(s) sent back to their queue." in [str(m) for m in response.context["messages"]]
    copy = OutboxMessage.objects.get()
    assert (copy.queue, copy.type, copy.causation_id, copy.producer) == (
        "customer_notifications", "customer.notified", letter.message_id, "redrive")
    assert operator.post(f"/admin/messaging/deadletter/{letter.pk}/change/", {"error": "x"}).status_code == 403
    letter.refresh_from_db()
    assert letter.redriven_at is not None
    assert letter.error == "OperationalError"

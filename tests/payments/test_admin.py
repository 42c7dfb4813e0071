"""Payments are written by messages: the admin shows them and changes nothing."""

import uuid
from decimal import Decimal

import pytest

from payments.services import payment_request

pytestmark = pytest.mark.django_db


def test_a_payment_is_shown_but_cannot_be_added_changed_or_deleted(client, django_user_model):
    # given
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    payment = payment_request(order_id=uuid.uuid4(), amount=Decimal("10.00"), currency="EUR", method="credit_card")
    base = "/admin/payments/payment/"
    # when
    listed, shown = client.get(base), client.get(f"{base}{payment.pk}/change/")
    added = client.get(f"{base}add/")
    changed = client.post(f"{base}{payment.pk}/change/", {"status": "captured", "amount": "0.00"})
    deleted = client.post(f"{base}{payment.pk}/delete/", {"post": "yes"})
    # then
    assert (listed.status_code, shown.status_code) == (200, 200)
    assert (added.status_code, changed.status_code, deleted.status_code) == (403, 403, 403)
    payment.refresh_from_db()
    assert (payment.status, payment.amount) == ("pending", Decimal("10.00"))

"""GET /api/payments/: every order's payment, for staff only, read-only."""

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from payments.services import payment_charge, payment_compensate, payment_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with):
    return staff_client_with("cashier", "payments.view_payment")


def paid(amount: str = "10.00", method: str = "credit_card"):
    order_id = uuid.uuid4()
    payment = payment_request(order_id=order_id, amount=Decimal(amount), currency="EUR", method=method)
    payment_charge(payment_id=payment.id)
    return order_id, payment.id


def test_staff_find_an_orders_payment_and_filter_by_status(staff_client):
    # given: a captured payment, a refunded one and a pending one
    captured_order, captured = paid("12.50")
    refunded_order, _ = paid("7.00")
    payment_compensate(order_id=refunded_order, reason="order cancelled")
    pending_order = uuid.uuid4()
    payment_request(order_id=pending_order, amount=Decimal("3.00"), currency="EUR", method="credit_card")
    # when: by order
    response = staff_client.get("/api/payments/", {"order_id": str(captured_order)})
    # then
    assert response.status_code == 200
    [payment] = response.json()["results"]
    assert (payment["payment_id"], payment["status"], payment["amount"], payment["currency"]) == (
        str(captured), "captured", "12.50", "EUR")
    assert payment["provider_reference"].startswith("PAY-")
    # by status; and all of them, the latest first
    refunded = staff_client.get("/api/payments/", {"status": "refunded"}).json()["results"]
    assert [p["order_id"] for p in refunded] == [str(refunded_order)]
    everything = staff_client.get("/api/payments/").json()["results"]
    assert [p["order_id"] for p in everything] == [str(pending_order), str(refunded_order), str(captured_order)]
    # one payment
    one = staff_client.get(f"/api/payments/{captured}/")
    assert one.status_code == 200
    assert one.json() == payment


def test_a_user_with_the_view_permission_may_read_payments(django_user_model, token_client_for):
    user = django_user_model.objects.create_user("finance", password="x")
    user.user_permissions.add(Permission.objects.get(codename="view_payment"))
    assert token_client_for(user).get("/api/payments/").status_code == 200


def test_customers_are_forbidden_and_anonymous_callers_must_authenticate(customer_client):
    _, payment_id = paid()
    assert customer_client.get("/api/payments/").status_code == 403
    assert customer_client.get(f"/api/payments/{payment_id}/").status_code == 403
    assert APIClient().get("/api/payments/").status_code == 401


@pytest.mark.parametrize("payment_id", [str(uuid.uuid4()), "not-a-uuid", "x" * 500, "%F0%9F%92%B3"])
def test_an_unknown_payment_is_404(staff_client, payment_id):
    assert staff_client.get(f"/api/payments/{payment_id}/").status_code == 404


@pytest.mark.parametrize("query", [{"order_id": "not-a-uuid"}, {"status": "stolen"}])
def test_a_bad_filter_is_400_naming_it(staff_client, query):
    response = staff_client.get("/api/payments/", query)
    assert response.status_code == 400
    assert set(response.json()) == set(query)


def test_payments_cannot_be_written_through_the_api(staff_client):
    _, payment_id = paid()
    assert staff_client.post("/api/payments/", {"amount": "1.00"}, format="json").status_code == 405
    assert staff_client.patch(f"/api/payments/{payment_id}/", {"status": "refunded"}, format="json").status_code == 405
    assert staff_client.delete(f"/api/payments/{payment_id}/").status_code == 405


def test_the_staff_flag_alone_reads_nothing(staff_client_with):
    # given: staff without the permission (the admin refuses them the same)
    flag_only = staff_client_with("ops")
    # when
    response = flag_only.get("/api/payments/")
    # then
    assert response.status_code == 403
    assert "payments.view_payment" in response.json()["detail"]

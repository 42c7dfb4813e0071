"""The /api/ gateway: identity, ownership, request ids, limits, throttling, deploy checks."""

import copy
import uuid

import pytest
from django.core.checks import run_checks
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop.models import Order
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


def test_every_response_has_a_request_id_that_becomes_the_order_and_correlation_id(catalogue, customer_client):
    # when
    response = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_X_REQUEST_ID="client-123")
    # then
    request_id = response["X-Request-ID"]
    assert str(uuid.UUID(request_id)) == request_id
    assert response["X-Client-Request-ID"] == "client-123"
    assert response.json()["order_id"] == request_id
    message = OutboxMessage.objects.get(type="order.placed")
    assert (message.correlation_id, message.causation_id) == (request_id, request_id)
    assert APIClient().get("/api/orders/")["X-Request-ID"]


def test_a_client_request_id_is_never_used_as_ours(catalogue, customer_client):
    mine = str(uuid.uuid4())
    response = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_X_REQUEST_ID=mine)
    assert response["X-Request-ID"] != mine
    assert response.json()["order_id"] != mine


def test_mass_assignment_changes_nothing(catalogue, customer_client):
    # given: a client trying to set everything that is the server's
    body = copy.deepcopy(SEED_ORDER)
    body.update({
        "order_id": "00000000-0000-0000-0000-000000000001", "status": "delivered", "total": "0.01",
        "currency": "XXX", "shipment_id": "SHP-MINE", "warehouse_confirmation": {"status": "confirmed"},
        "delivery_status": {"status": "delivered"}, "customer_id": 1, "created_at": "2000-01-01T00:00:00Z",
    })
    body["items"][0]["unit_price"] = 0
    # when
    response = customer_client.post("/api/orders/", body, format="json")
    # then
    assert response.status_code == 201
    order = Order.objects.get()
    assert str(order.id) != body["order_id"]
    assert (order.status, str(order.total), order.currency, order.shipment_id) == ("new", "1539.97", "EUR", "")
    assert order.warehouse_status == ""
    assert order.delivery_status == ""
    assert order.created_at.year > 2000


def test_versioned_routes_serve_the_same_api(catalogue, customer_client):
    order_id = customer_client.post("/api/v1/orders/", SEED_ORDER, format="json").json()["order_id"]
    assert customer_client.get(f"/api/orders/{order_id}/").status_code == 200
    assert customer_client.get(f"/api/v1/orders/{order_id}/").json()["order_id"] == order_id


def test_unknown_api_paths_answer_json_404():
    response = APIClient().get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


def test_oversized_bodies_get_413_and_store_nothing(catalogue, customer_client, settings):
    settings.API_MAX_BODY_BYTES = 2048
    body = copy.deepcopy(SEED_ORDER)
    body["customer"]["name"] = "x" * 4000
    response = customer_client.post("/api/orders/", body, format="json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert Order.objects.count() == 0


def test_non_json_bodies_are_refused_with_415(catalogue, customer_client):
    response = customer_client.post("/api/orders/", "customer=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_placing_orders_is_throttled_per_user_with_retry_after(catalogue, make_customer, settings):
    # given
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "orders": "3/minute"}
    _, alice = make_customer("alice")
    _, bob = make_customer("bob")
    # when
    codes = [alice.post("/api/orders/", SEED_ORDER, format="json").status_code for _ in range(4)]
    throttled = alice.post("/api/orders/", SEED_ORDER, format="json")
    # then: alice is stopped, bob is not, reading is not
    assert codes == [201, 201, 201, 429]
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert "throttled" in throttled.json()["detail"].lower()
    assert bob.post("/api/orders/", SEED_ORDER, format="json").status_code == 201
    assert alice.get("/api/orders/").status_code == 200
    assert Order.objects.count() == 4


def test_tracking_is_public_but_orders_are_not(catalogue, customer_client):
    anonymous = APIClient()
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    assert anonymous.get(f"/api/orders/{order_id}/").status_code == 401
    assert anonymous.get("/api/tracking/SHP-UNKNOWN/").status_code == 404


def test_admin_is_for_staff_only(make_customer, django_user_model, client):
    customer, _ = make_customer("carol")
    client.force_login(customer.user)
    assert client.get("/admin/").status_code == 302  # to the login page
    staff = django_user_model.objects.create_user("ops", is_staff=True)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200


class CardProcessor:
    """A deployment's own payment provider adapter, as PAYMENT_PROVIDER would name one."""


def production(settings) -> None:
    """The demo's world off, as in production (the tests run with it on)."""
    settings.SIM_ACTORS = False
    settings.PAYMENT_PROVIDER = f"{__name__}.CardProcessor"


def test_deploy_checks_pass_except_what_the_tls_proxy_owns(settings):
    # given: production settings as documented (a secret key and hosts from the environment)
    production(settings)
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    settings.SECRET_KEY = "k" * 20 + uuid.uuid4().hex + uuid.uuid4().hex
    # when
    messages = run_checks(include_deployment_checks=True)
    # then
    serious = sorted(m.id for m in messages if m.level >= 30)
    assert serious == ["security.W004", "security.W008"], [str(m) for m in messages]


def test_tls_proxy_settings_clear_the_last_two_checks(settings):
    production(settings)
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["shop.example.com"]
    settings.SECRET_KEY = "k" * 20 + uuid.uuid4().hex + uuid.uuid4().hex
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = True
    assert [m.id for m in run_checks(include_deployment_checks=True) if m.level >= 30] == []

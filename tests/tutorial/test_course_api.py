"""The course's API (make tutorial): its paths, status codes and shapes, in front of our services."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from course.services import GUEST_USERNAME
from messaging.models import OutboxMessage
from shop.models import Order
from shop.services import (
    Contact,
    OrderItem,
    order_confirmation_apply,
    order_delivery_update_apply,
    order_place,
)
from simulation.demo_data import SEED_ORDER
from support.services import tracking_record_stage

pytestmark = pytest.mark.django_db

# The course client's order body, as test_integration.py sends it.
COURSE_ORDER = {
    "customer": {"name": "Jaan Tamm", "email": "jaan.tamm@example.com", "phone": "+372 5123 4567"},
    "shipping_address": {"street": "Tartu mnt 123", "city": "Tallinn", "postal_code": "10115", "country": "Estonia"},
    "items": [
        {"product_id": "PRD001", "name": "Sülearvuti Dell XPS 15", "quantity": 1, "unit_price": 1299.99},
        {"product_id": "PRD003", "name": "Klaviatuur Logitech MX Keys", "quantity": 2, "unit_price": 119.99},
    ],
    "shipping_method": "standard",
    "payment_method": "credit_card",
}


@pytest.fixture
def client() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _course_paths_answer_in_utc(settings):
    """What config/settings.py sets in a process with TUTORIAL_API: every path is an endpoint."""
    settings.API_UTC_PATH_PREFIXES = ("/",)


def place(client: APIClient, body=COURSE_ORDER, **extra):
    return client.post("/orders", body, format="json", **extra)


@pytest.mark.urls("course.urls_shop")
def test_an_order_placed_without_a_token_goes_the_shops_own_road(client, catalogue):
    # when
    response = place(client)
    # then: the course's answer, 200 with the order's id and "new"
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"order_id", "status"}
    assert body["status"] == "new"
    order = Order.objects.get(pk=body["order_id"])
    # the guest customer's order, priced by the catalogue, announced through the outbox
    assert order.customer.user.username == GUEST_USERNAME
    assert order.total == Decimal("1539.97")
    assert list(OutboxMessage.objects.filter(correlation_id=order.id).values_list("type", flat=True)) == [
        "order.placed"]


@pytest.mark.urls("course.urls_shop")
def test_every_order_of_the_course_belongs_to_one_guest_who_cannot_sign_in(client, catalogue):
    # when
    first, second = place(client), place(client)
    # then
    assert (first.status_code, second.status_code) == (200, 200)
    guest = get_user_model().objects.get(username=GUEST_USERNAME)
    assert Order.objects.filter(customer__user=guest).count() == 2
    assert (guest.has_usable_password(), guest.is_staff, hasattr(guest, "auth_token")) == (False, False, False)


@pytest.mark.urls("course.urls_shop")
def test_the_same_idempotency_key_places_one_order(client, catalogue):
    # when
    first = place(client, HTTP_IDEMPOTENCY_KEY="course-1")
    again = place(client, HTTP_IDEMPOTENCY_KEY="course-1")
    # then
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


@pytest.mark.urls("course.urls_shop")
def test_a_new_order_reads_back_as_the_course_keeps_it(client, catalogue):
    # given
    order_id = place(client).json()["order_id"]
    # when
    response = client.get(f"/orders/{order_id}")
    # then: no warehouse answer and no delivery yet, so neither key (the course adds each on arrival)
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("order_id", "status", "customer", "shipping_address", "items",
                                        "shipping_method", "payment_method", "total", "currency")} == {
        "order_id": order_id, "status": "new",
        "customer": {"name": "Jaan Tamm", "email": "jaan.tamm@example.com", "phone": "+372 5123 4567"},
        "shipping_address": COURSE_ORDER["shipping_address"],
        "items": [{"product_id": "PRD001", "name": "Laptop", "quantity": 1, "unit_price": 1299.99},
                  {"product_id": "PRD003", "name": "Mechanical keyboard", "quantity": 2, "unit_price": 119.99}],
        "shipping_method": "standard", "payment_method": "credit_card", "total": 1539.97, "currency": "EUR"}
    assert "warehouse_confirmation" not in body
    assert "delivery_status" not in body


@pytest.mark.urls("course.urls_shop")
def test_the_warehouse_answer_and_the_delivery_show_as_the_course_client_reads_them(client, catalogue):
    # given: the warehouse confirmed, customer service told about the delivery
    order_id = uuid.UUID(place(client).json()["order_id"])
    order_confirmation_apply(order_id=order_id, confirmed=True, message="all items reserved")
    delivered_at = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    order_delivery_update_apply(order_id=order_id, shipment_id="SHP-ABC", status="delivered",
                                message="Delivered", timestamp=delivered_at)
    # when
    body = client.get(f"/orders/{order_id}").json()
    # then
    assert body["status"] == "delivered"
    confirmation = body["warehouse_confirmation"]
    assert {k: confirmation[k] for k in ("order_id", "status", "message")} == {
        "order_id": str(order_id), "status": "confirmed", "message": "all items reserved"}
    assert confirmation["processing_time"] is not None
    assert body["delivery_status"] == {"order_id": str(order_id), "shipment_id": "SHP-ABC", "status": "delivered",
                                       "message": "Delivered", "timestamp": "2026-12-07T10:30:00Z"}


@pytest.mark.urls("course.urls_shop")
@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-an-id", "x" * 300])
def test_an_unknown_order_is_the_courses_404(client, catalogue, order_id):
    # when
    response = client.get(f"/orders/{order_id}")
    # then
    assert response.status_code == 404
    assert response.json() == {"error": "Tellimust ei leitud"}


@pytest.mark.urls("course.urls_shop")
def test_a_customers_own_order_is_not_the_courses_to_show(client, catalogue, make_customer):
    # given: an order of a customer of the site
    customer, _ = make_customer()
    order_id = order_place(customer=customer, contact=Contact(name="Jaan Tamm"),
                           shipping_address=SEED_ORDER["shipping_address"], items=[OrderItem("PRD004", 1)],
                           shipping_method="standard", payment_method="credit_card").pk
    # when
    response = client.get(f"/orders/{order_id}")
    # then
    assert response.status_code == 404
    assert response.json() == {"error": "Tellimust ei leitud"}


def without(key: str) -> dict:
    body = copy.deepcopy(COURSE_ORDER)
    del body[key]
    return body


BAD_ORDERS = [
    ({}, ["customer", "items", "shipping_address"]),
    (without("items"), ["items"]),
    ({**COURSE_ORDER, "items": []}, ["items"]),
    ({**COURSE_ORDER, "items": [{"product_id": "PRD999", "quantity": 1}]}, ["items"]),
    ({**COURSE_ORDER, "items": [{"product_id": "PRD001", "quantity": 0}]}, ["items"]),
    ({**COURSE_ORDER, "shipping_method": "teleport"}, ["shipping_method"]),
    ({**COURSE_ORDER, "customer": {"email": "jaan.tamm@example.com"}}, ["customer"]),
    ([COURSE_ORDER], ["non_field_errors"]),
]


@pytest.mark.urls("course.urls_shop")
@pytest.mark.parametrize(("body", "fields"), BAD_ORDERS)
def test_a_bad_order_is_a_400_naming_each_bad_field(client, catalogue, body, fields):
    # when
    response = place(client, body)
    # then
    assert response.status_code == 400
    answer = response.json()
    assert answer["error"] == "invalid request"
    assert sorted(answer["fields"]) == fields
    assert Order.objects.count() == 0


@pytest.mark.urls("course.urls_shop")
def test_a_body_that_is_no_json_is_a_400(client, catalogue):
    # when
    response = client.post("/orders", "{not json", content_type="application/json")
    # then
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert response.json()["error"].startswith("JSON parse error")


@pytest.mark.urls("course.urls_shop")
@pytest.mark.parametrize(("method", "path", "status", "error"), [
    ("get", "/orders", 405, 'Method "GET" not allowed.'),
    ("delete", f"/orders/{uuid.uuid4()}", 405, 'Method "DELETE" not allowed.'),
    ("get", "/api/orders/", 404, "Not found"),
    ("get", "/tracking/SHP-1", 404, "Not found"),
])
def test_what_the_e_shop_does_not_serve_is_a_4xx_with_an_error(client, method, path, status, error):
    # when
    response = getattr(client, method)(path)
    # then
    assert response.status_code == status
    assert response.json() == {"error": error}


@pytest.mark.urls("course.urls_tracking")
def test_tracking_lists_the_stages_oldest_first_without_the_order(client):
    # given
    order_id = uuid.uuid4()
    for minute, stage in enumerate(["picked_up", "in_transit"]):
        tracking_record_stage(order_id=order_id, shipment_id="SHP-XYZ", status=stage, message=stage.replace("_", " "),
                              timestamp=datetime(2026, 12, 7, 10, minute, tzinfo=UTC))
    # when
    response = client.get("/tracking/SHP-XYZ")
    # then
    assert response.status_code == 200
    assert response.json() == {"shipment_id": "SHP-XYZ", "status": "in_transit", "events": [
        {"status": "picked_up", "message": "picked up", "timestamp": "2026-12-07T10:00:00Z"},
        {"status": "in_transit", "message": "in transit", "timestamp": "2026-12-07T10:01:00Z"}]}


@pytest.mark.urls("course.urls_tracking")
@pytest.mark.parametrize(("path", "status", "error"), [
    ("/tracking/SHP-NONE", 404, "Saadetist ei leitud"),
    ("/orders", 404, "Not found"),
])
def test_an_unknown_shipment_is_the_courses_404(client, path, status, error):
    # when
    response = client.get(path)
    # then
    assert response.status_code == status
    assert response.json() == {"error": error}


@pytest.mark.urls("course.urls_shop")
@pytest.mark.parametrize(("request_kwargs", "status", "error"), [
    ({"path": "/orders/a\x01b"}, 400, "The path contains a control character."),
    ({"path": "/orders", "CONTENT_LENGTH": "x"}, 400, "Content-Length is not a number."),
    ({"path": "/orders", "CONTENT_LENGTH": str(10 ** 6)}, 413, "Request body too large: 1000000 bytes, limit 65536."),
])
def test_what_the_gateway_refuses_before_any_view_is_the_courses_kind_of_answer(client, settings, request_kwargs,
                                                                                 status, error):
    # given: a process of the course's API
    settings.TUTORIAL_API = "shop"
    # when
    response = client.generic("POST", **request_kwargs)
    # then
    assert response.status_code == status
    assert response.json() == {"error": error}

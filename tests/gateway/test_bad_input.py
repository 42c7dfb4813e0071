"""Bad input anywhere gets a clear 4xx and changes nothing: a table of what an attacker or a
careless client sends, against the API, the pages, the admin's filters and the dashboard."""

import json

import pytest
import requests
from django.contrib.auth import get_user_model
from django.test import Client

from messaging.models import OutboxMessage
from shop.models import Order
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db

CONTROL = ["%00", "%01", "%0A", "%1F", "%7F"]

ANONYMOUS_PATHS = [
    "/api/tracking/{c}/", "/api/v1/tracking/SHP{c}1/", "/track/{c}/", "/track/SHP-1{c}/", "/api/orders/?page={c}",
    "/api/schema/?format={c}", "/api/docs/?x={c}", "/{c}", "/admin/login/?next={c}", "/healthz?{c}=1",
]
STAFF_PATHS = [
    "/admin/shop/order/?status={c}", "/admin/shop/order/?q={c}", "/admin/shop/order/{c}/change/",
    "/admin/messaging/outboxmessage/?queue={c}", "/admin/shop/product/?active__exact={c}",
    "/dashboard/?minutes={c}", "/dashboard/data.json?minutes={c}", "/dashboard/orders/{c}/journey/",
    "/dashboard/orders/{c}/journey.json", "/metrics?x={c}",
]
CUSTOMER_PATHS = ["/api/orders/{c}/", "/api/orders/?status={c}", "/api/orders/?{c}=1"]


@pytest.fixture
def staff_client(db):
    staff = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    return client


def assert_refused(response, *, status=400):
    assert response.status_code == status, (response.status_code, response.content[:200])
    assert b"control character" in response.content


@pytest.mark.parametrize("control", CONTROL)
@pytest.mark.parametrize("template", ANONYMOUS_PATHS)
def test_control_characters_in_anonymous_paths_and_queries_are_400(template, control):
    assert_refused(Client().get(template.format(c=control)))


@pytest.mark.parametrize("header", ["HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_IDEMPOTENCY_KEY", "HTTP_ACCEPT",
                                    "CONTENT_TYPE"])
@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1f", "\x7f"])
def test_control_characters_in_a_header_are_400_before_the_database_sees_them(header, control):
    # a NUL in a token or a session key reached PostgreSQL, which refuses it: 500 before
    values = {"HTTP_AUTHORIZATION": f"Token a{control}b", "HTTP_COOKIE": f"sessionid=a{control}b",
              "CONTENT_TYPE": f"application/json{control}"}
    name = header.removeprefix("HTTP_").replace("_", "-").title()
    body = json.dumps(SEED_ORDER).encode()
    for response in (Client().get("/api/orders/", **{header: values.get(header, f"x{control}")}),
                     Client().generic("POST", "/api/orders/", body, **{"CONTENT_TYPE": "application/json",
                                                                        header: values.get(header, f"x{control}")})):
        assert_refused(response)
        assert response.json() == {"detail": f"The header {name} contains a control character."}
    assert not Order.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_a_tab_in_a_header_is_allowed(customer_client):
    assert customer_client.get("/api/orders/", HTTP_ACCEPT="application/json,\ttext/html").status_code == 200


@pytest.mark.parametrize("control", ["%00", "%0D"])
@pytest.mark.parametrize("template", STAFF_PATHS)
def test_control_characters_in_staff_pages_and_admin_filters_are_400(staff_client, template, control):
    assert_refused(staff_client.get(template.format(c=control)))


@pytest.mark.parametrize("control", ["%00", "%09"])
@pytest.mark.parametrize("template", CUSTOMER_PATHS)
def test_control_characters_in_the_customer_api_are_400_json(customer_client, template, control):
    response = customer_client.get(template.format(c=control))
    assert_refused(response)
    assert response["Content-Type"] == "application/json"


def test_a_control_character_in_a_posted_path_changes_nothing(catalogue, customer_client):
    assert_refused(customer_client.post("/api/orders/%00/cancel/"))
    assert_refused(customer_client.post("/api/orders/?x=%00", SEED_ORDER, format="json"))
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BODIES = {
    "nested far past the recursion limit": '{"customer": ' + nested(30000) + "}",
    "nested deeper than 20": json.dumps({**SEED_ORDER, "shipping_address": json.loads(nested(25))}),
    "objects nested deeper than 20": '{"a":' * 25 + "1" + "}" * 25,
    "too many keys": json.dumps({**SEED_ORDER, **{f"k{i}": 0 for i in range(5100)}}),
    "too many items": json.dumps({**SEED_ORDER, "items": [0] * 6000}),
    "NaN": '{"customer": NaN}',
    "not UTF-8": b'{"customer": "\xff\xfe"}',
    "NUL in a string": json.dumps({**SEED_ORDER, "customer": {"name": "Jaan\u0000Tamm"}}),
    "NUL in the address": json.dumps({**SEED_ORDER, "shipping_address": {"street": "Narva\u0000"}}),
    "truncated": json.dumps(SEED_ORDER)[:-3],
    "a lone surrogate in a value": json.dumps(SEED_ORDER).replace("Jaan Tamm", "Jaan \\ud800"),
    "a lone surrogate in a key": '{"customer\\udfff": 1}',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_pathological_json_bodies_are_400_and_store_nothing(catalogue, customer_client, body):
    response = customer_client.post("/api/orders/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


def test_a_body_without_a_length_is_411_over_a_real_socket(live_server, catalogue, make_customer):
    # given: a chunked body (no Content-Length), as `requests` sends a generator
    _, client = make_customer("chunky")
    headers = {"Authorization": client._credentials["HTTP_AUTHORIZATION"], "Content-Type": "application/json"}
    body = json.dumps(SEED_ORDER).encode()
    # when
    response = requests.post(f"{live_server.url}/api/orders/", data=iter([body[:50], body[50:]]), headers=headers,
                             timeout=10)
    # then
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 411
    assert "Content-Length" in response.json()["detail"]
    assert Order.objects.count() == 0


def test_ordinary_input_still_passes(catalogue, customer_client):
    assert customer_client.get("/api/orders/?page=1").status_code == 200
    assert Client().get("/api/tracking/SHP-%C3%A4/").status_code == 404  # non-ASCII is fine, unknown id
    assert customer_client.post("/api/orders/", SEED_ORDER, format="json").status_code == 201

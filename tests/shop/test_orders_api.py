import copy
import json
from datetime import datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop.api import OrderIn
from shop.models import Order, Product
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


def test_seed_order_is_accepted_as_it_is_with_catalogue_prices(catalogue, customer_client):
    # given: the seed's body, with client-sent names and prices that must not be trusted
    body = copy.deepcopy(SEED_ORDER)
    body["items"][0]["unit_price"] = 0.01
    body["items"][0]["name"] = "Free laptop"
    # when
    response = customer_client.post("/api/orders/", body, format="json")
    # then
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "new"
    order = Order.objects.get(pk=data["order_id"])
    assert order.total == Decimal("1539.97")
    assert data["total"] == "1539.97"
    assert [(i["product_id"], i["name"], i["unit_price"], i["quantity"]) for i in data["items"]] == [
        ("PRD001", "Laptop", "1299.99", 1),
        ("PRD003", "Mechanical keyboard", "119.99", 2),
    ]
    assert OutboxMessage.objects.filter(type="order.placed", correlation_id=data["order_id"]).count() == 1


def test_placing_an_order_publishes_order_placed_with_the_contact_and_the_catalogue_lines(catalogue, customer_client):
    # when
    response = customer_client.post("/api/orders/", SEED_ORDER, format="json")
    # then: one event for the warehouse and customer service, in the order's transaction
    order = Order.objects.get(pk=response.json()["order_id"])
    [row] = OutboxMessage.objects.filter(correlation_id=str(order.id))
    assert (row.exchange, row.queue, row.type, row.producer) == ("logistics.events", "order.placed", "order.placed",
                                                                 "shop")
    assert row.payload == {
        "order_id": str(order.id),
        "recipient": "Jaan Tamm",
        "contact_email": "jaan.tamm@example.com",
        "account_email": "jaan.tamm@example.com",  # the account's own: the only address mailed
        "language": "en",  # the request's (no Accept-Language: the default)
        "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117",
                             "country": "Estonia"},
        "shipping_method": "express",
        "items": [{"product_id": "PRD001", "quantity": 1, "name": "Laptop"},
                  {"product_id": "PRD003", "quantity": 2, "name": "Mechanical keyboard"}],
        "total": "1539.97",
        "currency": "EUR",
        "placed_at": row.payload["placed_at"],
    }
    assert datetime.fromisoformat(row.payload["placed_at"]) == order.created_at
    assert list(order.history.values_list("status", "note")) == [("new", "order placed")]


def test_order_detail_has_the_contract_fields(catalogue, customer_client):
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    data = customer_client.get(f"/api/orders/{order_id}/").json()
    assert {"order_id", "status", "items", "total", "warehouse_confirmation", "shipment_id",
            "delivery_status"} <= set(data)
    assert data["warehouse_confirmation"] == {"status": None, "message": None}
    assert data["delivery_status"] == {"status": None, "message": None, "timestamp": None}
    assert data["shipment_id"] is None


def without(body: dict, key: str) -> dict:
    body = copy.deepcopy(body)
    body.pop(key)
    return body


def with_item(**changes) -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD001", "quantity": 1, **changes}]
    return body


def with_customer(customer) -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["customer"] = customer
    return body


MALFORMED = [
    ("no items", without(SEED_ORDER, "items"), "items"),
    ("empty items", {**SEED_ORDER, "items": []}, "items"),
    ("items not a list", {**SEED_ORDER, "items": "PRD001"}, "items"),
    ("unknown product", with_item(product_id="PRD999"), "items"),
    ("quantity zero", with_item(quantity=0), "items"),
    ("quantity negative", with_item(quantity=-3), "items"),
    ("quantity a string", with_item(quantity="two"), "items"),
    ("quantity fractional", with_item(quantity=1.5), "items"),
    ("quantity absurd", with_item(quantity=10**12), "items"),
    ("quantity null", with_item(quantity=None), "items"),
    ("no customer", without(SEED_ORDER, "customer"), "customer"),
    ("customer without name", with_customer({"email": "a@b.ee"}), "customer"),
    ("bad email", with_customer({"name": "Jaan", "email": "not-an-email"}), "customer"),
    ("no email", with_customer({"name": "Jaan Tamm"}), "customer"),
    ("no address", without(SEED_ORDER, "shipping_address"), "shipping_address"),
    ("address not an object", {**SEED_ORDER, "shipping_address": 42}, "shipping_address"),
    ("NUL in name", with_customer({"name": "Ja\x00an"}), "customer"),
    ("oversized name", with_customer({"name": "x" * 5000}), "customer"),
]


def with_address(**changes) -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["shipping_address"].update(changes)
    return body


def test_an_order_that_cannot_be_delivered_is_400_naming_each_missing_field(catalogue, customer_client):
    # given: the body the issue saw accepted: no e-mail, no city, no postal code, no country
    body = {**SEED_ORDER, "customer": "J", "shipping_address": {"street": "x"}}
    # when
    response = customer_client.post("/api/orders/", body, format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {
        "customer": {"email": ["This field is required."]},
        "shipping_address": {"city": ["This field is required."], "postal_code": ["This field is required."],
                             "country": ["This field is required."]},
    }
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


@pytest.mark.parametrize(("changes", "errors"), [
    ({"postal_code": "1011"}, {"postal_code": ["not a postal code of Estonia: five digits, e.g. 10117"]}),
    ({"postal_code": "10117a"}, {"postal_code": ["not a postal code of Estonia: five digits, e.g. 10117"]}),
    ({"country": "EE", "postal_code": "ABCDE"}, {"postal_code": ["not a postal code of Estonia: five digits, "
                                                                 "e.g. 10117"]}),
    ({"country": "Narnia"}, {"country": ['not a country the shop knows: its name in English ("Estonia") or its '
                                         'ISO code ("EE")']}),
    ({"city": "  "}, {"city": ["This field may not be blank."]}),
    ({"street": ""}, {"street": ["This field may not be blank."]}),
    ({"country": "Latvia", "postal_code": "10117"}, {"postal_code": ["not a postal code of Latvia: four digits, "
                                                                     "e.g. LV-1050"]}),
    ({"country": "Japan", "postal_code": "!"}, {"postal_code": ["not a postal code: 2 to 10 letters, digits, "
                                                                "spaces or dashes"]}),
])
def test_an_address_is_checked_against_its_country(catalogue, customer_client, changes, errors):
    response = customer_client.post("/api/orders/", with_address(**changes), format="json")
    assert response.status_code == 400
    assert response.json() == {"shipping_address": errors}
    assert Order.objects.count() == 0


@pytest.mark.parametrize("changes", [
    {"country": "Estonia"}, {"country": "EE"}, {"country": "ee"}, {"country": "Eesti"}, {"country": " estonia "},
    {"country": "LV", "postal_code": "LV-1050"}, {"country": "Finland", "postal_code": "00100"},
    {"country": "Japan", "postal_code": "100-0001"},
])
def test_a_deliverable_address_is_taken_with_the_country_as_sent(catalogue, customer_client, changes):
    body = with_address(**changes)
    response = customer_client.post("/api/orders/", body, format="json")
    assert response.status_code == 201, response.content
    assert Order.objects.get().shipping_address == {**body["shipping_address"],
                                                    "country": body["shipping_address"]["country"].strip()}


@pytest.mark.parametrize(("label", "body", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_orders_get_400_naming_the_field(catalogue, customer_client, label, body, field):
    response = customer_client.post("/api/orders/", body, format="json")
    assert response.status_code == 400, (label, response.status_code, response.content)
    assert field in response.json(), response.json()
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


def test_an_order_whose_total_no_order_can_hold_is_400_not_500(catalogue, customer_client):
    # given: staff priced a product at the most a price may be (99,999,999.99)
    Product.objects.filter(sku="PRD001").update(price=Decimal("99999999.99"))
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": "PRD001", "quantity": 1000}]  # 99,999,999,990.00: 11 digits before the point
    # when
    response = customer_client.post("/api/orders/", body, format="json")
    # then: refused naming the items, nothing written (before: the database refused the total, 500)
    assert response.status_code == 400, response.content
    assert response.json() == {"items": ["the order's total (99999999990.00 EUR) is more than one order may hold "
                                         "(9999999999.99)"]}
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0
    # and the largest total that fits is taken
    body["items"] = [{"product_id": "PRD001", "quantity": 100}]  # 9,999,999,999.00
    assert customer_client.post("/api/orders/", body, format="json").status_code == 201
    assert Order.objects.get().total == Decimal("9999999999.00")


def test_a_json_array_body_is_400_not_500(catalogue, customer_client):
    response = customer_client.post("/api/orders/", [SEED_ORDER], format="json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


def test_anonymous_users_can_neither_order_nor_read(catalogue):
    client = APIClient()
    assert client.post("/api/orders/", SEED_ORDER, format="json").status_code == 401
    assert client.get("/api/orders/").status_code == 401


def test_a_customer_sees_only_their_own_orders(catalogue, make_customer):
    # given
    _, alice = make_customer("alice")
    _, bob = make_customer("bob")
    alice_order = alice.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    # when / then
    assert bob.get(f"/api/orders/{alice_order}/").status_code == 404
    assert bob.get("/api/orders/").json()["count"] == 0
    assert alice.get("/api/orders/").json()["count"] == 1
    assert alice.get("/api/orders/not-a-uuid/").status_code == 404


def test_staff_with_the_view_permission_see_every_order_the_flag_alone_none(catalogue, make_customer,
                                                                            staff_client_with):
    # given: alice's order; staff with shop.view_order, and staff with the flag only
    _, alice = make_customer("alice")
    order_id = alice.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    viewer, flag_only = staff_client_with("viewer", "shop.view_order"), staff_client_with("ops")
    # then
    assert viewer.get("/api/orders/").json()["count"] == 1
    assert viewer.get(f"/api/orders/{order_id}/").status_code == 200
    assert flag_only.get("/api/orders/").json()["count"] == 0
    assert flag_only.get(f"/api/orders/{order_id}/").status_code == 404


def test_cancelling_a_customers_order_needs_its_own_permission_and_names_who(catalogue, make_customer,
                                                                            staff_client_with):
    # given: two of alice's orders; staff who may only read orders, and staff who may cancel them
    _, alice = make_customer("alice")
    first, second = (alice.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"] for _ in range(2))
    viewer = staff_client_with("viewer", "shop.view_order")
    flag_only = staff_client_with("ops")
    desk = staff_client_with("desk", "shop.view_order", "shop.cancel_order")
    # when
    refused = viewer.post(f"/api/orders/{first}/cancel/")
    hidden = flag_only.post(f"/api/orders/{second}/cancel/")
    cancelled = desk.post(f"/api/orders/{first}/cancel/")
    own = alice.post(f"/api/orders/{second}/cancel/")
    # then
    assert (refused.status_code, refused.json()) == (
        403, {"detail": "cancelling another customer's order needs the permission shop.cancel_order"})
    assert hidden.status_code == 404
    assert cancelled.status_code == 200
    assert cancelled.json()["history"][-1]["note"] == "cancelled for the customer by staff member desk"
    assert own.json()["history"][-1]["note"] == "cancelled by the customer"
    message = OutboxMessage.objects.get(type="order.cancelled", correlation_id=first)
    assert message.payload["message"] == "cancelled by customer service"  # the customer reads it


def test_a_token_is_the_whole_key_of_an_active_user(catalogue, make_customer):
    # given: a customer's token, and the same key cut short
    customer, client = make_customer("alice")
    key = client._credentials["HTTP_AUTHORIZATION"].split()[1]

    def with_key(k):
        other = APIClient()
        other.credentials(HTTP_AUTHORIZATION=f"Token {k}")
        return other

    # when / then
    assert with_key(key).get("/api/orders/").status_code == 200
    assert with_key(key[:-1]).get("/api/orders/").status_code == 401
    assert with_key("x" * 500).get("/api/orders/").status_code == 401
    assert with_key("\u00e9" * 64).get("/api/orders/").status_code == 401  # a latin-1 byte: no 500
    customer.user.is_active = False
    customer.user.save(update_fields=["is_active"])
    assert with_key(key).get("/api/orders/").status_code == 401


def test_openapi_schema_and_docs_are_served():
    client = APIClient()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/orders/" in schema.json()["paths"]
    assert client.get("/api/docs/").status_code == 200


def test_the_201_body_is_the_order_as_its_detail_shows_it(catalogue, customer_client):
    # when
    placed = customer_client.post("/api/orders/", SEED_ORDER, format="json")
    # then: the order built in the request answers exactly what reading it back would
    detail = customer_client.get(f"/api/orders/{placed.json()['order_id']}/").json()
    assert placed.status_code == 201
    assert placed.json() == {key: value for key, value in detail.items() if key != "history"}


REFUSED = ["null", "[]", "{}", "42", json.dumps(with_item(quantity=0)), json.dumps(with_customer({"email": "x"})),
           json.dumps({**SEED_ORDER, "shipping_method": "by <script>", "items": [{"product_id": ""}] * 51})]


@pytest.mark.parametrize("raw", REFUSED)
def test_a_refused_body_gets_exactly_drfs_errors(catalogue, customer_client, raw):
    # given: what DRF's own OrderIn(data=...).is_valid() says about the body
    expected = OrderIn(data=json.loads(raw))
    assert not expected.is_valid()
    # when
    response = customer_client.post("/api/orders/", raw, content_type="application/json")
    # then
    assert response.status_code == 400
    assert response.json() == json.loads(json.dumps(expected.errors))
    assert Order.objects.count() == 0

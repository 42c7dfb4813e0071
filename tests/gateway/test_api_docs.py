"""The API's documentation as a newcomer reads it: each endpoint once, human titles, examples
with real values, the order's asynchronous life told where an order is placed, and test values
marked as such."""

import pytest
from rest_framework.test import APIClient

from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema() -> dict:
    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_each_endpoint_is_listed_once_under_api_and_still_answers_under_v1(schema, catalogue, customer_client):
    # then: no v1 copy in the schema
    paths = sorted(schema["paths"])
    assert [p for p in paths if p.startswith("/api/v1/")] == []
    assert "/api/orders/" in paths
    assert "/api/tracking/{shipment_id}/" in paths
    tags = {tag for ops in schema["paths"].values() for op in ops.values() for tag in op.get("tags", [])}
    assert "v1" not in tags
    # the alias itself still works
    assert customer_client.post("/api/v1/orders/", SEED_ORDER, format="json").status_code == 201
    assert "/api/v1/" in schema["info"]["description"]


def test_placing_an_order_tells_its_asynchronous_life_with_real_examples(schema):
    post = schema["paths"]["/api/orders/"]["post"]
    assert post["summary"] == "Place an order (answered at once; it then moves on by itself)"
    for words in ('answers **at once**, with `201` and\n`status: "new"`', "asynchronously",
                  "`confirmed`, or `rejected`", "`paid`, or `payment_failed`", "`out_for_delivery` → `delivered`",
                  "GET /api/orders/{order_id}/", "GET /api/tracking/{shipment_id}/", "Idempotency-Key"):
        assert words in post["description"], words
    request = post["requestBody"]["content"]["application/json"]["examples"]
    assert request["TheSeed'sOrder"]["value"]["shipping_address"] == {
        "street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117", "country": "Estonia"}
    created = post["responses"]["201"]["content"]["application/json"]["examples"]
    [placed] = created.values()
    assert (placed["value"]["status"], placed["value"]["total"]) == ("new", "1539.97")
    detail = schema["paths"]["/api/orders/{order_id}/"]["get"]["responses"]["200"]["content"]["application/json"]
    [delivered] = detail["examples"].values()
    assert [h["status"] for h in delivered["value"]["history"]] == [
        "new", "confirmed", "paid", "picked_up", "in_transit", "out_for_delivery", "delivered"]
    # no example anywhere is the generator's placeholder
    assert '"string"' not in str(request) + str(created)


def test_the_test_payment_value_is_marked_and_not_offered_as_a_way_to_pay(schema, catalogue):
    enum = schema["components"]["schemas"]["PaymentMethodEnum"]
    assert enum["enum"] == ["credit_card", "card_declined"]
    assert "`card_declined` - TEST VALUE, not a way to pay" in enum["description"]
    catalogue_page = schema["paths"]["/api/products/"]["get"]["responses"]["200"]["content"]["application/json"]
    ref = catalogue_page["schema"]["$ref"].rsplit("/", 1)[1]
    properties = schema["components"]["schemas"][ref]["properties"]
    def enum_of(prop: dict) -> list[str]:
        return schema["components"]["schemas"][prop["items"]["$ref"].rsplit("/", 1)[1]]["enum"]

    assert enum_of(properties["payment_methods"]) == ["credit_card"]
    assert enum_of(properties["test_payment_methods"]) == ["card_declined"]
    assert properties["test_payment_methods"]["description"].startswith("TEST values, not ways to pay")


@pytest.mark.parametrize(("path", "title"), [
    ("/api/", "Logistics API"), ("/api/orders/", "Orders"), ("/api/products/", "Products"),
])
def test_the_browsable_api_pages_have_human_titles(customer_client, catalogue, path, title):
    html = customer_client.get(path, HTTP_ACCEPT="text/html").content.decode()
    assert f"<h1>{title}</h1>" in html
    assert " Api</h1>" not in html

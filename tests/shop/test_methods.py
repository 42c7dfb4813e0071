"""Shipping and payment methods: only the published values."""

import pytest

from contracts.methods import PAYMENT_METHODS, SHIPPING_METHODS
from shop.models import Order
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("field", "value"), [
    ("shipping_method", "teleport"), ("payment_method", "bitcoin"), ("shipping_method", ""),
    ("payment_method", "CREDIT_CARD"), ("shipping_method", 7), ("payment_method", None)])
def test_an_unlisted_method_is_400_naming_the_field_and_stores_nothing(catalogue, customer_client, field, value):
    response = customer_client.post("/api/orders/", {**SEED_ORDER, field: value}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert Order.objects.count() == 0


@pytest.mark.parametrize(("shipping", "payment"), [
    ("standard", "credit_card"), ("express", "credit_card"), ("standard", "card_declined")])
def test_every_listed_method_is_accepted(catalogue, customer_client, shipping, payment):
    body = {**SEED_ORDER, "shipping_method": shipping, "payment_method": payment}
    response = customer_client.post("/api/orders/", body, format="json")
    assert response.status_code == 201
    assert (response.json()["shipping_method"], response.json()["payment_method"]) == (shipping, payment)


def test_the_schema_enumerates_the_methods(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    body = schema["components"]["schemas"]["OrderInRequest"]["properties"]
    enums = {name: schema["components"]["schemas"][body[name]["allOf"][0]["$ref"].split("/")[-1]]["enum"]
             for name in ("shipping_method", "payment_method")}
    assert enums == {"shipping_method": list(SHIPPING_METHODS), "payment_method": list(PAYMENT_METHODS)}
    assert SHIPPING_METHODS == ("standard", "express")
    assert PAYMENT_METHODS == ("credit_card", "card_declined")

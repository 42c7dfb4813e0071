"""The catalogue (GET /api/products/) and the filtered, ordered order list."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from shop.models import Order
from simulation.demo_data import SEED_ORDER
from warehouse.models import StockItem

pytestmark = pytest.mark.django_db


def test_the_catalogue_is_public_with_prices_availability_and_methods(catalogue):
    # given: one product sold out
    StockItem.objects.filter(sku="PRD002").update(quantity_on_hand=0)
    # when
    response = APIClient().get("/api/products/")
    # then
    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 4
    assert body["results"][0] == {"product_id": "PRD001", "name": "Laptop", "price": "1299.99", "currency": "EUR",
                                  "available": True, "quantity_available": 10}
    assert [(p["product_id"], p["available"]) for p in body["results"]] == [
        ("PRD001", True), ("PRD002", False), ("PRD003", True), ("PRD004", True)]
    assert body["shipping_methods"] == ["standard", "express"]
    assert body["payment_methods"] == ["credit_card"]
    assert body["test_payment_methods"] == ["card_declined"]  # a test value, never offered as a way to pay


@pytest.mark.parametrize(("query", "expected"), [
    ("product_id=PRD003", ["PRD003"]),
    ("name=MOUSE", ["PRD004"]),
    ("min_price=100&max_price=400", ["PRD002", "PRD003"]),
    ("available=false", ["PRD002"]),
    ("available=true&ordering=-price", ["PRD001", "PRD003", "PRD004"]),
    ("ordering=price", ["PRD004", "PRD003", "PRD002", "PRD001"]),
    ("page_size=2&page=2", ["PRD003", "PRD004"]),
])
def test_the_catalogue_filters_orders_and_pages(catalogue, query, expected):
    StockItem.objects.filter(sku="PRD002").update(quantity_on_hand=0)
    response = APIClient().get(f"/api/products/?{query}")
    assert [p["product_id"] for p in response.json()["results"]] == expected


@pytest.mark.parametrize("query", ["min_price=cheap", "available=maybe", "ordering=secret", "page=0", "page=x",
                                   "page=99"])
def test_bad_catalogue_parameters_are_400_naming_them(catalogue, query):
    response = APIClient().get(f"/api/products/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_the_order_list_filters_by_status_and_time_and_orders_by_date(catalogue, customer_client):
    # given: three orders, placed a day apart, one cancelled
    ids = [customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"] for _ in range(3)]
    now = timezone.now()
    for days, order_id in zip((2, 1, 0), ids, strict=True):
        Order.objects.filter(pk=order_id).update(created_at=now - timedelta(days=days))
    Order.objects.filter(pk=ids[1]).update(status="cancelled")

    def listed(query: str) -> list[str]:
        response = customer_client.get(f"/api/orders/?{query}")
        assert response.status_code == 200, response.json()
        return [o["order_id"] for o in response.json()["results"]]

    # when / then
    assert listed("") == [ids[2], ids[1], ids[0]]  # newest first
    assert listed("ordering=created_at") == ids
    assert listed("status=new") == [ids[2], ids[0]]
    assert listed("status=new&status=cancelled") == [ids[2], ids[1], ids[0]]
    since = (now - timedelta(days=1, hours=1)).isoformat()
    assert listed(f"created_after={since.replace('+', '%2B')}") == [ids[2], ids[1]]
    until = (now - timedelta(hours=12)).isoformat()
    assert listed(f"created_before={until.replace('+', '%2B')}&ordering=created_at") == [ids[0], ids[1]]


@pytest.mark.parametrize("query", ["status=teleported", "created_after=yesterday", "ordering=total", "page=0",
                                   "page=2", "page=-1", "page=abc"])
def test_bad_order_list_parameters_are_400_naming_them(catalogue, customer_client, query):
    customer_client.post("/api/orders/", SEED_ORDER, format="json")
    response = customer_client.get(f"/api/orders/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()

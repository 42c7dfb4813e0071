"""GET /api/stock/: what is left to sell and what is set aside, for warehouse staff only."""

import uuid

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from warehouse.models import StockItem
from warehouse.services import RequestedLine, picking_complete, picking_start, reservation_release, stock_reserve

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(staff_client_with):
    return staff_client_with("keeper", "warehouse.view_stockitem")


def reserve(quantity: int, sku: str = "PRD001") -> uuid.UUID:
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[RequestedLine(sku=sku, quantity=quantity)],
                  recipient="Jaan Tamm", shipping_address={"city": "Tallinn"}, shipping_method="standard")
    return order_id


def test_staff_see_each_product_with_what_is_left_and_what_is_held_for_orders(catalogue, staff_client):
    # given: three orders of PRD001: one still reserved, one released, one picked and handed over
    on_hand = StockItem.objects.get(sku="PRD001").quantity_on_hand
    reserve(2)
    reservation_release(order_id=reserve(3), reason="cancelled")
    picked = reserve(1)
    picking_start(order_id=picked)
    picking_complete(order_id=picked)
    # when
    response = staff_client.get("/api/stock/")
    # then
    assert response.status_code == 200
    items = {item["product_id"]: item for item in response.json()["results"]}
    assert items.keys() == set(StockItem.objects.values_list("sku", flat=True))
    assert (items["PRD001"]["on_hand"], items["PRD001"]["held"], items["PRD001"]["available"]) == (
        on_hand - 1, 2, on_hand - 3)
    assert items["PRD003"]["held"] == 0
    assert set(items["PRD001"]) == {"product_id", "name", "location", "on_hand", "held", "available", "updated_at"}
    # one product, and the filters
    one = staff_client.get("/api/stock/PRD001/")
    assert one.status_code == 200
    assert one.json() == items["PRD001"]
    location = items["PRD001"]["location"]
    assert {i["product_id"] for i in staff_client.get("/api/stock/", {"location": location}).json()["results"]} == {
        sku for sku, item in items.items() if item["location"] == location}
    StockItem.objects.filter(sku="PRD003").update(quantity_on_hand=0)
    in_stock = staff_client.get("/api/stock/", {"in_stock": "true"}).json()["results"]
    assert "PRD003" not in {i["product_id"] for i in in_stock}
    assert "PRD001" in {i["product_id"] for i in in_stock}
    assert [i["product_id"] for i in staff_client.get("/api/stock/", {"in_stock": "false"}).json()["results"]] == [
        "PRD003"]


def test_warehouse_staff_with_the_permission_may_read_the_stock(catalogue, django_user_model, token_client_for):
    user = django_user_model.objects.create_user("picker", password="x")
    user.user_permissions.add(Permission.objects.get(codename="view_stockitem"))
    assert token_client_for(user).get("/api/stock/").status_code == 200


def test_customers_are_forbidden_and_anonymous_callers_must_authenticate(catalogue, customer_client):
    assert customer_client.get("/api/stock/").status_code == 403
    assert customer_client.get("/api/stock/PRD001/").status_code == 403
    assert APIClient().get("/api/stock/").status_code == 401


@pytest.mark.parametrize(("product_id", "status"), [
    ("NOPE", 404), ("x" * 500, 404), ("%F0%9F%93%A6", 404),
    ("PRD001%00", 400),  # a NUL in a path is refused before any view
])
def test_an_unknown_product_is_404(catalogue, staff_client, product_id, status):
    assert staff_client.get(f"/api/stock/{product_id}/").status_code == status


@pytest.mark.parametrize("query", [{"in_stock": "perhaps"}, {"location": "x" * 500}])
def test_a_bad_filter_is_400_naming_it(catalogue, staff_client, query):
    response = staff_client.get("/api/stock/", query)
    assert response.status_code == 400
    assert set(response.json()) == set(query)


def test_the_stock_cannot_be_written_through_the_api(catalogue, staff_client):
    assert staff_client.post("/api/stock/", {"product_id": "NEW"}, format="json").status_code == 405
    assert staff_client.delete("/api/stock/PRD001/").status_code == 405


def test_the_staff_flag_alone_reads_nothing(catalogue, staff_client_with):
    # given: staff without the permission (the admin refuses them the same)
    flag_only = staff_client_with("ops")
    # when
    response = flag_only.get("/api/stock/")
    # then
    assert response.status_code == 403
    assert "warehouse.view_stockitem" in response.json()["detail"]

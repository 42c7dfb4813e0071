"""Every public route answers where the contract says, served by the app that owns it."""

import pytest
from django.urls import resolve, reverse

ROUTES = {
    "/api/orders/": "shop.api.OrderListCreateApi",
    "/api/orders/ORD-1/": "shop.api.OrderDetailApi",
    "/api/orders/ORD-1/cancel/": "shop.api.OrderCancelApi",
    "/api/v1/orders/": "shop.api.OrderListCreateApi",
    "/api/v1/orders/ORD-1/": "shop.api.OrderDetailApi",
    "/api/v1/orders/ORD-1/cancel/": "shop.api.OrderCancelApi",
    "/": "config.views.home",
    "/api/": "config.views.ApiRootApi",
    "/api/v1/": "config.views.ApiRootApi",
    "/api/products/": "shop.catalogue.ProductListApi",
    "/api/v1/products/": "shop.catalogue.ProductListApi",
    "/api/auth/token/": "accounts.api.TokenObtainApi",
    "/api/auth/token/rotate/": "accounts.api.TokenRotateApi",
    "/api/v1/auth/token/": "accounts.api.TokenObtainApi",
    "/api/tracking/SHP-1/": "support.api.TrackingApi",
    "/api/v1/tracking/SHP-1/": "support.api.TrackingApi",
    "/api/shipments/SHP-1/stage/": "transport.api.ShipmentStageApi",
    "/api/stock/": "warehouse.api.StockListApi",
    "/api/stock/PRD001/": "warehouse.api.StockDetailApi",
    "/api/v1/stock/": "warehouse.api.StockListApi",
    "/api/payments/": "payments.api.PaymentListApi",
    "/api/payments/PAY-1/": "payments.api.PaymentDetailApi",
    "/api/v1/payments/": "payments.api.PaymentListApi",
    "/api/v1/shipments/SHP-1/stage/": "transport.api.ShipmentStageApi",
    "/track/SHP-1/": "support.views.track_page",
    "/track/": "support.views.track_search",
    "/dashboard/": "observability.views.dashboard_page",
    "/dashboard/data.json": "observability.views.dashboard_data",
    "/dashboard/orders/ORD-1/journey/": "observability.views.journey_page",
    "/dashboard/orders/ORD-1/journey.json": "observability.views.journey_data",
    "/healthz": "observability.views.healthz",
    "/readyz": "observability.views.readyz",
    "/metrics": "observability.views.metrics",
    "/favicon.ico": "observability.views.favicon",
    "/api/schema/": "config.views.ApiSchema",
    "/api/docs/": "config.views.ApiDocs",
    "/api/redoc/": "config.views.ApiRedoc",
    "/admin/": "django.contrib.admin.sites.index",
}


@pytest.mark.parametrize(("path", "view"), ROUTES.items())
def test_each_public_path_is_served_by_its_view(path, view):
    assert resolve(path)._func_path == view


def test_the_names_that_templates_and_views_reverse():
    assert reverse("track", args=["SHP-1"]) == "/track/SHP-1/"
    assert reverse("api:tracking", args=["SHP-1"]) == "/api/tracking/SHP-1/"
    assert reverse("v1:tracking", args=["SHP-1"]) == "/api/v1/tracking/SHP-1/"
    assert reverse("track-search") == "/track/"
    assert reverse("home") == "/"
    assert reverse("api:order-list") == "/api/orders/"
    assert reverse("v1:order-detail", args=["ORD-1"]) == "/api/v1/orders/ORD-1/"
    assert reverse("observability:dashboard") == "/dashboard/"
    assert reverse("observability:dashboard-data") == "/dashboard/data.json"
    assert reverse("observability:journey", args=["ORD-1"]) == "/dashboard/orders/ORD-1/journey/"
    assert reverse("observability:journey-data", args=["ORD-1"]) == "/dashboard/orders/ORD-1/journey.json"
    assert reverse("observability:healthz") == "/healthz"
    assert reverse("schema") == "/api/schema/"
    assert reverse("admin:index") == "/admin/"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("method", ["options", "head"])
def test_each_public_path_answers_options_and_head_without_a_server_error(client, path, method):
    response = getattr(client, method)(path)  # the test client raises what the view raises
    assert response.status_code < 500, (path, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/", "/api/docs/?script", "/api/redoc/"])
def test_options_on_the_schema_and_docs_lists_the_methods_and_nothing_else(client, path):
    response = client.options(path)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Allow"].split(", ") == ["GET", "HEAD", "OPTIONS"]

"""The front door: the front page, the API's root, docs served from local files, the headers
every response carries (CSP, Permissions-Policy, no-store)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


def test_the_front_page_links_everything_a_newcomer_needs():
    response = Client().get("/")
    html = response.content.decode()
    assert response.status_code == 200
    for href in ("/api/", "/api/docs/", "/api/redoc/", "/api/schema/", "/api/products/", "/dashboard/", "/admin/",
                 "/api-auth/login/"):
        assert f'href="{href}' in html, href
    assert 'action="/track/"' in html


def test_the_tracking_search_goes_to_the_shipment_page():
    client = Client()
    assert client.get("/track/?shipment_id=SHP-ABC123").headers["Location"] == "/track/SHP-ABC123/"
    assert client.get("/track/?shipment_id=").headers["Location"] == "/"
    assert client.get("/track/?shipment_id=a/b").status_code == 400
    assert client.get("/track/?shipment_id=" + "x" * 41).status_code == 400


def test_the_api_root_lists_the_endpoints_of_its_version():
    root = APIClient().get("/api/").json()
    v1 = APIClient().get("/api/v1/").json()
    assert root["orders"] == "http://testserver/api/orders/"
    assert root["products"] == "http://testserver/api/products/"
    assert root["tracking"] == "http://testserver/api/tracking/{shipment_id}/"
    assert root["token"] == "http://testserver/api/auth/token/"
    assert v1["orders"] == "http://testserver/api/v1/orders/"
    assert root["docs"] == v1["docs"] == "http://testserver/api/docs/"


def test_swagger_ui_and_redoc_load_only_local_files():
    for path in ("/api/docs/", "/api/redoc/"):
        html = Client().get(path).content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert sources, path
        assert all(src.startswith("/") for src in sources), (path, sources)
        assert "<script>" not in html  # no inline script: the CSP forbids it
    script = Client().get("/api/docs/?script")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.content.decode()
    assert Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert Client().get("/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js").status_code == 200


CSP_PAGES = ["/", "/api/docs/", "/api/redoc/", "/admin/login/", "/api-auth/login/", "/track/SHP-UNKNOWN/", "/api/"]


@pytest.mark.parametrize("path", CSP_PAGES)
def test_every_html_page_has_a_content_security_policy(path):
    response = Client().get(path, HTTP_ACCEPT="text/html")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    assert response["Permissions-Policy"].startswith("accelerometer=()")


def test_the_dashboard_script_carries_the_response_nonce():
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    client = Client()
    client.force_login(staff)
    response = client.get("/dashboard/")
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"]).group(1)
    assert f'<script nonce="{nonce}">' in response.content.decode()


def test_responses_with_personal_data_are_never_stored(catalogue, customer_client):
    placed = customer_client.post("/api/orders/", SEED_ORDER, format="json")
    responses = [placed, customer_client.get("/api/orders/"),
                 customer_client.get(f"/api/orders/{placed.json()['order_id']}/"), APIClient().get("/api/orders/")]
    for response in responses:
        assert "no-store" in response["Cache-Control"], response.request["PATH_INFO"]
    staff = get_user_model().objects.create_user("ops", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    for path in ("/admin/shop/order/", "/dashboard/", "/dashboard/data.json"):
        assert "no-store" in client.get(path)["Cache-Control"], path


def test_static_files_keep_their_own_caching():
    response = Client().get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui.css")
    assert "no-store" not in response["Cache-Control"]

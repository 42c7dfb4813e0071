"""The admin as the people who use it every day see it: titled as the product, its apps in the
order of the work, read-only pages without Save, short ids in lists, and every page about an
order linking to the others."""

import re

import pytest

from config.admin_display import address_text, age, short_id
from shop.services import order_confirmation_apply
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


def test_the_site_is_titled_as_the_product_and_lists_its_apps_in_the_order_of_the_work(admin_client):
    # when
    html = admin_client.get("/admin/").content.decode()
    # then
    assert "<title>Orders, stock, shipments and messages | Logistics platform</title>" in html
    assert "Logistics platform: operations" in html
    assert "Django administration" not in html
    order = [label for label in re.findall(r'<div class="app-(\w+) module', html)]
    assert order == ["shop", "warehouse", "transport", "support", "payments", "messaging", "observability",
                     "auth", "knox", "axes", "django_q"]


def test_a_read_only_page_offers_no_save(catalogue, customer_client, admin_client):
    # given: an order (every field read-only; staff act on it through actions only)
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    # when
    html = admin_client.get(f"/admin/shop/order/{order_id}/change/").content.decode()
    # then
    assert 'name="_save"' not in html
    assert 'name="_continue"' not in html
    assert "Narva mnt 5, 10117 Tallinn, Estonia" in html


def test_lists_show_short_ids_and_the_page_the_full_one_with_links_across_the_apps(catalogue, customer_client,
                                                                                   admin_client):
    # given: an order the warehouse confirmed
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=order_id, confirmed=True, message="All items reserved")
    # when
    listing = admin_client.get("/admin/shop/order/").content.decode()
    page = admin_client.get(f"/admin/shop/order/{order_id}/change/").content.decode()
    # then
    assert f'<code title="{order_id}">{order_id[:8]}</code>' in listing
    assert f"<div class=\"readonly\">{order_id}</div>" in page
    for url in (f"/admin/warehouse/reservation/?order_id={order_id}", f"/admin/payments/payment/?order_id={order_id}",
                f"/admin/transport/shipment/?order_id={order_id}",
                f"/admin/support/trackingrecord/?order_id={order_id}", f"/dashboard/orders/{order_id}/journey/"):
        assert f'href="{url}"' in page
        assert admin_client.get(url).status_code == 200


def test_ids_addresses_and_ages_read_as_a_person_writes_them():
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert short_id("9b2f0c4e-1111-2222-3333-444455556666") == "9b2f0c4e"
    assert short_id("SHP-0A1B2C3D4E5F60718293") == "SHP-0A1B2C3D"
    assert address_text({"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117",
                         "country": "Estonia"}) == "Narva mnt 5, 10117 Tallinn, Estonia"
    assert address_text({}) == "—"
    assert [age(datetime(2026, 1, 1, 11, 59, 15, tzinfo=UTC), now), age(datetime(2026, 1, 1, 10, 55, tzinfo=UTC), now),
            age(datetime(2025, 12, 30, 8, 0, tzinfo=UTC), now)] == ["45 s", "1 h 5 min", "2 d 4 h"]

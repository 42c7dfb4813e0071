"""/track/<shipment_id>/: stages in the customer's words and local time, the current one highlighted, the
expected delivery window, the carrier and whom to ask; no personal data; phone-sized; English or Estonian
after Accept-Language; a friendly not-found page (and a JSON 404 from the API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from shop.services import Contact, OrderItem, order_place
from support.services import customer_contact_record, tracking_record_stage

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 2, 3, 8, 15, 0, tzinfo=UTC)


@pytest.fixture
def order(catalogue, make_customer):
    customer, _ = make_customer()
    placed = order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com",
                                                          phone="+372 5555 1234"),
                       shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                       items=[OrderItem(product_id="PRD002", quantity=1)], shipping_method="express",
                       payment_method="credit_card")
    # customer service's copy of it (order.placed): the shipping method gives the delivery window
    customer_contact_record(order_id=placed.id, name="Jaan Tamm", email="customer@example.com",
                            shipping_method="express")
    return placed


def record(order, stages) -> None:
    for i, stage in enumerate(stages):
        tracking_record_stage(order_id=order.id, shipment_id="SHP-TRACK1", status=stage, message=f"note {i}",
                              timestamp=T0 + timedelta(seconds=75 * i))


def test_track_page_shows_stages_with_local_times_and_highlights_the_current_one(order, settings):
    # given
    settings.SHOP_CARRIER = "Kiirkuller"
    settings.SHOP_CONTACT_EMAIL = "help@logistics.example"
    record(order, ["vehicle_assigned", "picked_up", "in_transit"])
    # when
    response = Client().get("/track/SHP-TRACK1/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<!doctype html>\n<html lang="en">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<div class="now" id="current-stage">On its way</div>' in page
    assert '<li class="current" data-stage="in_transit" aria-current="step">' in page
    assert page.count('<li class="done"') == 2
    assert page.count('<li class="pending"') == 2
    # Tallinn is UTC+2 in February
    assert '<time datetime="2026-02-03T10:15:00+02:00">February 3, 10:15</time>' in page
    assert '<time datetime="2026-02-03T10:17:30+02:00">February 3, 10:17</time>' in page
    assert "Times in EET (local time)" in page
    # customer words, not transport's notes
    assert "The courier has collected your parcel from our warehouse." in page
    assert "note 1" not in page
    assert "VEH" not in page
    # express: one to two days from leaving the warehouse
    assert '<dd id="delivery-window">February 4 – February 5</dd>' in page
    assert '<dd id="carrier">Kiirkuller</dd>' in page
    assert '<a href="mailto:help@logistics.example">help@logistics.example</a>' in page
    assert 'http-equiv="refresh"' in page
    assert 'aria-valuenow="60"' in page  # 3 of 5 stages
    for personal in ("Jaan", "Tamm", "jaan.tamm", "5555", "Narva", str(order.id)):
        assert personal not in page


def test_a_delivered_shipment_says_when_and_stops_refreshing(order):
    # given
    record(order, ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"])
    # when
    page = Client().get("/track/SHP-TRACK1/").content.decode()
    # then
    assert '<div class="now delivered" id="current-stage">Delivered</div>' in page
    assert '<dd id="delivered-at">February 3, 10:20</dd>' in page
    assert "delivery-window" not in page
    assert 'http-equiv="refresh"' not in page
    assert 'aria-valuenow="100"' in page


def test_the_page_is_in_estonian_for_a_browser_that_asks_for_it(order):
    # given
    record(order, ["vehicle_assigned", "picked_up"])
    # when
    response = Client().get("/track/SHP-TRACK1/", HTTP_ACCEPT_LANGUAGE="et,en;q=0.5")
    # then
    page = response.content.decode()
    assert page.startswith('<!doctype html>\n<html lang="et">')
    assert response["Content-Language"] == "et"
    assert '<div class="now" id="current-stage">Laost teele läinud</div>' in page
    assert '<h1>Teie saadetis</h1>' in page
    assert '<time datetime="2026-02-03T10:16:15+02:00">3. veebruar, 10:16</time>' in page
    assert '<dd id="delivery-window">4. veebruar – 5. veebruar</dd>' in page
    assert "Vedaja" in page
    assert "Your shipment" not in page


def test_the_front_page_follows_the_browsers_language():
    english = Client().get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    estonian = Client().get("/", HTTP_ACCEPT_LANGUAGE="et").content.decode()
    assert '<html lang="en">' in english
    assert "<h2>Track a shipment</h2>" in english
    assert '<html lang="et">' in estonian
    assert "<h2>Jälgi saadetist</h2>" in estonian


@pytest.mark.parametrize("typed", ["shp-track1", "  SHP-TRACK1 ", "Shp-Track1%20"])
def test_a_shipment_id_is_found_whatever_its_case_and_stray_spaces(order, typed):
    # given
    record(order, ["vehicle_assigned"])
    # when
    page = Client().get(f"/track/{typed}/")
    api = Client().get(f"/api/tracking/{typed}/")
    searched = Client().get("/track/", {"shipment_id": typed.replace("%20", " ")})
    # then
    assert page.status_code == 200
    assert '<div class="id">SHP-TRACK1</div>' in page.content.decode()
    assert api.status_code == 200
    assert api.json()["shipment_id"] == "SHP-TRACK1"
    assert (searched.status_code, searched["Location"]) == (302, "/track/SHP-TRACK1/")


def test_an_unknown_shipment_gets_a_friendly_page_with_a_way_back(db):
    # when
    response = Client().get("/track/SHP-NOPE/")
    estonian = Client().get("/track/SHP-NOPE/", HTTP_ACCEPT_LANGUAGE="et")
    # then
    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8"
    page = response.content.decode()
    assert '<div class="now" id="not-found">We could not find that shipment</div>' in page
    assert '<div class="id">SHP-NOPE</div>' in page
    assert '<a href="/" id="back">' in page
    assert '<form action="/track/" method="get" role="search">' in page
    assert "mailto:" in page
    assert estonian.status_code == 404
    assert '<div class="now" id="not-found">Me ei leidnud seda saadetist</div>' in estonian.content.decode()


def test_an_id_that_cannot_be_one_gets_the_same_page_as_a_400(db):
    response = Client().get("/track/", {"shipment_id": "<script>"})
    assert response.status_code == 400
    assert '<div class="now" id="not-found">That is not a shipment id</div>' in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_the_api_answers_an_unknown_shipment_with_a_json_404(db):
    response = Client().get("/api/tracking/SHP-NOPE/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "shipment not found"}


def test_the_api_keeps_utc_while_the_page_shows_local_time(order):
    # given
    record(order, ["vehicle_assigned"])
    # when
    body = Client().get("/api/tracking/SHP-TRACK1/").json()
    # then
    assert body["events"][0]["timestamp"] == "2026-02-03T08:15:00Z"

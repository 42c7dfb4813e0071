"""/track/<shipment_id>/: stages with times, the current one highlighted, no personal data, phone-sized."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from shop.services import Contact, OrderItem, order_place
from support.services import tracking_record_stage

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 2, 3, 8, 15, 0, tzinfo=UTC)


@pytest.fixture
def order(catalogue, make_customer):
    customer, _ = make_customer()
    return order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com",
                                                          phone="+372 5555 1234"),
                       shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                       items=[OrderItem(product_id="PRD002", quantity=1)], shipping_method="express",
                       payment_method="credit_card")


def record(order, stages) -> None:
    for i, stage in enumerate(stages):
        tracking_record_stage(order_id=order.id, shipment_id="SHP-TRACK1", status=stage, message=f"note {i}",
                              timestamp=T0 + timedelta(seconds=75 * i))


def test_track_page_shows_stages_with_times_and_highlights_the_current_one(order):
    # given
    record(order, ["vehicle_assigned", "picked_up", "in_transit"])
    # when
    response = Client().get("/track/SHP-TRACK1/")
    # then
    assert response.status_code == 200
    page = response.content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<div class="now" id="current-stage">In transit</div>' in page
    assert '<li class="current" data-stage="in_transit" aria-current="step">' in page
    assert page.count('<li class="done"') == 2 and page.count('<li class="pending"') == 2
    assert '<time datetime="2026-02-03T08:15:00+00:00">Feb 3, 08:15:00 UTC</time>' in page
    assert '<time datetime="2026-02-03T08:17:30+00:00">Feb 3, 08:17:30 UTC</time>' in page
    assert 'http-equiv="refresh"' in page
    assert 'aria-valuenow="60"' in page  # 3 of 5 stages
    for personal in ("Jaan", "Tamm", "jaan.tamm", "5555", "Narva", str(order.id)):
        assert personal not in page


def test_a_delivered_shipment_stops_refreshing(order):
    # given
    record(order, ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"])
    # when
    page = Client().get("/track/SHP-TRACK1/").content.decode()
    # then
    assert '<div class="now delivered" id="current-stage">Delivered</div>' in page
    assert 'http-equiv="refresh"' not in page
    assert 'aria-valuenow="100"' in page

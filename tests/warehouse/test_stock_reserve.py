import uuid

import pytest
from django.db import IntegrityError, transaction

from messaging.models import OutboxMessage
from warehouse.models import Reservation, StockItem
from warehouse.services import RequestedLine, picking_complete, picking_start, reservation_release, stock_reserve

pytestmark = pytest.mark.django_db


def reserve(order_id, lines):
    return stock_reserve(
        order_id=order_id, lines=[RequestedLine(sku=s, quantity=q) for s, q in lines],
        recipient="Jaan Tamm", shipping_address={"street": "Narva mnt 5", "city": "Tallinn"}, shipping_method="express",
    )


def stock() -> dict[str, int]:
    return dict(StockItem.objects.values_list("sku", "quantity_on_hand"))


def test_confirmed_order_reserves_every_line_and_waits_for_payment(catalogue):
    # given
    order_id = uuid.uuid4()
    # when
    reservation = reserve(order_id, [("PRD001", 1), ("PRD003", 2)])
    # then
    assert reservation.status == "reserved"
    assert stock() == {"PRD001": 9, "PRD002": 15, "PRD003": 18, "PRD004": 25}
    message = OutboxMessage.objects.get(type__in=["order.confirmed", "order.rejected"])
    assert (message.type, message.correlation_id, message.exchange) == ("order.confirmed", str(order_id),
                                                                         "logistics.events")


def test_one_unavailable_line_reserves_nothing_and_names_the_product(catalogue):
    # given: the first line is available, the second is not
    order_id = uuid.uuid4()
    # when
    reservation = reserve(order_id, [("PRD001", 1), ("PRD002", 16)])
    # then
    assert reservation.status == "rejected"
    assert stock() == {"PRD001": 10, "PRD002": 15, "PRD003": 20, "PRD004": 25}
    message = OutboxMessage.objects.get(type__in=["order.confirmed", "order.rejected"])
    assert message.type == "order.rejected"
    assert message.payload["unavailable"] == [{"product_id": "PRD002", "requested": 16, "available": 15}]
    assert "PRD002 (requested 16, available 15)" in message.payload["message"]


def test_unknown_product_is_a_rejection_not_a_crash(catalogue):
    reservation = reserve(uuid.uuid4(), [("NOPE", 1)])
    assert reservation.status == "rejected"
    assert "NOPE" in reservation.reason


def test_a_repeated_request_for_the_same_order_reserves_once(catalogue):
    # given
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD004", 5)])
    # when
    again = reserve(order_id, [("PRD004", 5)])
    # then
    assert again.status == "reserved"
    assert stock()["PRD004"] == 20
    assert Reservation.objects.filter(order_id=order_id).count() == 1
    assert OutboxMessage.objects.filter(type="order.confirmed").count() == 1


def test_picking_hands_the_order_to_transport_once(catalogue):
    # given
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD001", 1)])
    # when: paid (twice, as a redelivery would), then picked (twice)
    picking_start(order_id=order_id)
    picking_start(order_id=order_id)
    picking_complete(order_id=order_id)
    picking_complete(order_id=order_id)
    # then: whoever picks heard of it once, and transport got one shipping order
    assert OutboxMessage.objects.filter(type="picking.started", correlation_id=str(order_id)).count() == 1
    shipping = OutboxMessage.objects.get(queue="shipping_orders")
    assert shipping.type == "shipment.requested"
    assert shipping.payload["items"] == [{"product_id": "PRD001", "quantity": 1}]
    assert Reservation.objects.get(order_id=order_id).status == "picked"


def test_the_database_refuses_negative_stock(catalogue):
    with pytest.raises(IntegrityError), transaction.atomic():
        StockItem.objects.filter(sku="PRD001").update(quantity_on_hand=-1)


def test_picking_waits_for_payment(catalogue):
    # given: reserved but not paid
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD001", 1)])
    # when
    picking_complete(order_id=order_id)
    # then
    assert Reservation.objects.get(order_id=order_id).status == "reserved"
    assert not OutboxMessage.objects.filter(queue="shipping_orders").exists()


def test_release_returns_the_stock_once(catalogue):
    # given
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD001", 2), ("PRD003", 3)])
    # when: the compensation arrives twice
    reservation_release(order_id=order_id, reason="payment declined")
    reservation_release(order_id=order_id, reason="payment declined")
    # then
    assert stock() == {"PRD001": 10, "PRD002": 15, "PRD003": 20, "PRD004": 25}
    assert Reservation.objects.get(order_id=order_id).status == "released"


def test_release_before_the_reservation_makes_the_late_request_reserve_nothing(catalogue):
    # given: the cancellation overtook the order
    order_id = uuid.uuid4()
    reservation_release(order_id=order_id, reason="cancelled")
    # when
    reservation = reserve(order_id, [("PRD001", 1)])
    # then
    assert reservation.status == "released"
    assert stock()["PRD001"] == 10
    assert not OutboxMessage.objects.filter(type="order.confirmed").exists()


def test_release_after_picking_started_changes_nothing(catalogue):
    order_id = uuid.uuid4()
    reserve(order_id, [("PRD001", 1)])
    picking_start(order_id=order_id)
    reservation_release(order_id=order_id, reason="too late")
    assert Reservation.objects.get(order_id=order_id).status == "picking"
    assert stock()["PRD001"] == 9

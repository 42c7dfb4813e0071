"""The warehouse staff's "picking done" command, as the admin action."""

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from messaging.models import OutboxMessage
from warehouse.models import Reservation
from warehouse.services import RequestedLine, picking_complete, picking_start, reservation_release, stock_reserve

pytestmark = pytest.mark.django_db

RESERVATIONS_ADMIN = "admin:warehouse_reservation_changelist"


def reserve(sku: str = "PRD001", quantity: int = 1) -> uuid.UUID:
    order_id = uuid.uuid4()
    stock_reserve(order_id=order_id, lines=[RequestedLine(sku=sku, quantity=quantity)], recipient="Jaan Tamm",
                  shipping_address={"street": "Narva mnt 5", "city": "Tallinn"}, shipping_method="express")
    return order_id


def being_picked() -> uuid.UUID:
    order_id = reserve()
    picking_start(order_id=order_id)
    return order_id


def reservation(order_id: uuid.UUID) -> Reservation:
    return Reservation.objects.get(order_id=order_id)


def shipping_requests(order_id: uuid.UUID) -> list[tuple[str, dict]]:
    rows = OutboxMessage.objects.filter(type="shipment.requested", correlation_id=str(order_id))
    return [(row.queue, row.payload) for row in rows]


def mark_picking_done(client, order_ids: list[uuid.UUID]):
    """POST the action as the changelist's form does, then follow the redirect back to it."""
    pks = [str(reservation(order_id).pk) for order_id in order_ids]
    return client.post(reverse(RESERVATIONS_ADMIN), {"action": "mark_picking_done", "_selected_action": pks},
                       follow=True)


def admin_messages(response) -> list[str]:
    """The messages the changelist shows after the action (and so takes off the session)."""
    return [str(m) for m in response.context["messages"]]


def test_picking_done_hands_each_picked_order_to_transport(catalogue, admin_client):
    # given: two orders being picked
    first, second = being_picked(), being_picked()
    # when
    response = mark_picking_done(admin_client, [first, second])
    # then
    assert response.redirect_chain == [(reverse(RESERVATIONS_ADMIN), 302)]
    assert admin_messages(response) == ["2 orders picked and handed to transport."]
    for order_id in (first, second):
        picked = reservation(order_id)
        assert picked.status == "picked"
        assert picked.picked_at is not None
        [(queue, payload)] = shipping_requests(order_id)
        assert queue == "shipping_orders"
        assert (payload["order_id"], payload["recipient"], payload["items"]) == (
            str(order_id), "Jaan Tamm", [{"product_id": "PRD001", "quantity": 1}])


def test_picking_done_leaves_orders_not_being_picked_as_they_were(catalogue, admin_client):
    # given: one being picked, one unpaid, one released, one picked already
    picking, unpaid, released, picked = being_picked(), reserve(), reserve(), being_picked()
    reservation_release(order_id=released, reason="payment failed")
    picking_complete(order_id=picked)
    picked_at = reservation(picked).picked_at
    # when
    response = mark_picking_done(admin_client, [picking, unpaid, released, picked])
    # then
    assert admin_messages(response) == [
        "1 order picked and handed to transport.",
        "3 orders not being picked, left as they were (1 picked, 1 released, 1 reserved).",
    ]
    assert [reservation(o).status for o in (picking, unpaid, released, picked)] == [
        "picked", "reserved", "released", "picked"]
    assert reservation(picked).picked_at == picked_at
    assert [len(shipping_requests(o)) for o in (picking, unpaid, released, picked)] == [1, 0, 0, 1]


def test_picking_done_twice_hands_the_order_over_once(catalogue, admin_client):
    # given
    order_id = being_picked()
    # when
    first = mark_picking_done(admin_client, [order_id])
    second = mark_picking_done(admin_client, [order_id])
    # then
    assert admin_messages(first) == ["1 order picked and handed to transport."]
    assert admin_messages(second) == ["1 order not being picked, left as they were (1 picked)."]
    assert len(shipping_requests(order_id)) == 1


def test_picking_done_needs_the_change_permission(catalogue, client, django_user_model):
    # given: staff who may only look at reservations
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_reservation",
                                                      content_type__app_label="warehouse"))
    client.force_login(clerk)
    order_id = being_picked()
    # when
    response = mark_picking_done(client, [order_id])
    # then: the action is not offered (the changelist shows no actions), nothing changed
    assert response.redirect_chain == []
    assert response.context["action_form"] is None
    assert admin_messages(response) == []
    assert reservation(order_id).status == "picking"
    assert shipping_requests(order_id) == []


def test_reservations_cannot_be_added_or_deleted_in_the_admin(catalogue, admin_client):
    # given
    order_id = reserve()
    pk = reservation(order_id).pk
    # when
    added = admin_client.get(reverse("admin:warehouse_reservation_add"))
    deleted = admin_client.post(reverse("admin:warehouse_reservation_delete", args=[pk]), {"post": "yes"})
    # then
    assert (added.status_code, deleted.status_code) == (403, 403)
    assert reservation(order_id).status == "reserved"

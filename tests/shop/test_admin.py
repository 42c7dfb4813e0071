"""The order admin shows what messages wrote, read-only; staff act through services."""

import pytest
from django.contrib.admin.sites import site

from messaging.models import OutboxMessage
from shop.models import Order, OrderStatusChange
from shop.services import order_confirmation_apply, order_payment_result_apply
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


@pytest.fixture
def place(catalogue, customer_client):
    def place_confirmed() -> Order:
        order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
        return order_confirmation_apply(order_id=order_id, confirmed=True, message="All items reserved")

    return place_confirmed


def test_the_order_page_shows_the_payment_as_payments_told_the_shop(place, admin_client):
    # given
    order = place()
    order_payment_result_apply(order_id=order.id, status="captured", reference="PAY-1", reason="")
    # when
    response = admin_client.get(f"/admin/shop/order/{order.id}/change/")
    # then
    assert response.status_code == 200
    assert "1539.97 EUR by credit_card: captured; reference PAY-1; payment captured" in response.content.decode()
    history = [formset for formset in response.context["inline_admin_formsets"]
               if formset.opts.model is OrderStatusChange]
    [history] = history
    assert not history.has_add_permission
    assert not history.has_delete_permission
    assert set(history.readonly_fields) == {"status", "note", "at"}
    assert [form.instance.status for form in history.formset.forms] == ["new", "confirmed", "paid"]
    assert not history.has_change_permission


def test_every_order_field_is_read_only_and_orders_are_neither_added_nor_deleted(admin_client, rf, admin_user):
    request = rf.get("/admin/shop/order/")
    request.user = admin_user
    order_admin = site._registry[Order]
    assert {f.name for f in Order._meta.fields} <= set(order_admin.get_readonly_fields(request))
    assert not order_admin.has_add_permission(request)
    assert not order_admin.has_delete_permission(request)
    assert admin_client.get("/admin/shop/order/add/").status_code == 403


def test_staff_cancel_through_the_service_with_its_rules(place, admin_client):
    # given: one order still cancellable, one paid (picking started)
    open_order, paid_order = place(), place()
    order_payment_result_apply(order_id=paid_order.id, status="captured", reference="PAY-2", reason="")
    # when
    response = admin_client.post("/admin/shop/order/", {
        "action": "cancel_orders", "_selected_action": [str(open_order.id), str(paid_order.id)]}, follow=True)
    # then: the open order is cancelled with its compensation; the paid one is left, with the reason
    assert response.status_code == 200
    assert Order.objects.get(pk=open_order.id).status == "cancelled"
    assert Order.objects.get(pk=paid_order.id).status == "paid"
    assert OutboxMessage.objects.filter(type="order.cancelled", correlation_id=str(open_order.id)).count() == 1
    assert OutboxMessage.objects.filter(type="order.cancelled", correlation_id=str(paid_order.id)).count() == 0
    shown = [str(message) for message in response.context["messages"]]
    assert shown == ["1 order(s) cancelled.",
                     f"Not cancelled: {paid_order.id}: picking has started (order is paid); "
                     "the order can no longer be cancelled"]

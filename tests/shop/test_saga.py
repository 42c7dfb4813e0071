"""The shop as the order saga's coordinator: payment results, timeouts, cancellation."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop import services
from shop.models import Order
from shop.services import (
    order_confirmation_apply,
    order_payment_result_apply,
    order_payment_timeout,
    payment_deadlines_enforce,
)
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


@pytest.fixture
def confirmed_order(catalogue, customer_client):
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=order_id, confirmed=True, message="All items reserved")
    return Order.objects.get(pk=order_id)


def emitted(order, type_: str) -> int:
    return OutboxMessage.objects.filter(correlation_id=str(order.id), type=type_).count()


def test_captured_payment_makes_the_order_paid_and_hands_it_to_picking_once(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_status, order.payment_reference) == ("paid", "captured", "PAY-1")
    assert emitted(order, "order.paid") == 1
    row = OutboxMessage.objects.get(type="order.paid")
    assert (row.exchange, row.queue) == ("logistics", "fulfilment_requests")


def test_declined_payment_fails_the_order_and_publishes_the_compensation_once(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="declined", reference="", reason="card declined")
    order_payment_result_apply(order_id=confirmed_order.id, status="declined", reference="", reason="card declined")
    order = Order.objects.get(pk=confirmed_order.id)
    assert order.status == "payment_failed" and "card declined" in order.payment_message
    assert emitted(order, "order.payment_failed") == 1
    row = OutboxMessage.objects.get(type="order.payment_failed")
    assert (row.exchange, row.queue) == ("logistics.events", "order.payment_failed")


def test_an_unanswered_payment_is_asked_again_then_failed(confirmed_order, settings):
    settings.PAYMENT_MAX_REQUESTS = 3
    # when: the first two waits end with no answer
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)  # a stale, repeated check
    order_payment_timeout(order_id=confirmed_order.id, request_number=2)
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_requests) == ("confirmed", 3)
    assert emitted(order, "payment.requested") == 2
    # when: the last one too
    order_payment_timeout(order_id=confirmed_order.id, request_number=3)
    order = Order.objects.get(pk=confirmed_order.id)
    assert order.status == "payment_failed"
    assert order.payment_message == "no answer from payments after 3 requests"
    assert emitted(order, "order.payment_failed") == 1


def test_an_answer_stops_the_clock(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)
    assert Order.objects.get(pk=confirmed_order.id).status == "paid"
    assert emitted(confirmed_order, "payment.requested") == 0


def _overdue(order_id) -> None:
    Order.objects.filter(pk=order_id).update(payment_due_at=timezone.now() - timedelta(seconds=1))


def test_confirmation_starts_the_payment_clock_and_the_sweep_acts_only_when_it_runs_out(confirmed_order, settings):
    settings.PAYMENT_MAX_REQUESTS = 2
    started = Order.objects.get(pk=confirmed_order.id).payment_due_at
    assert started is not None and started > timezone.now()
    # not due yet: the sweep leaves it alone
    assert payment_deadlines_enforce() == 0
    assert emitted(confirmed_order, "payment.requested") == 0
    # due: asked again, with a new deadline
    _overdue(confirmed_order.id)
    assert payment_deadlines_enforce() == 1
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_requests) == ("confirmed", 2)
    assert order.payment_due_at > timezone.now()
    assert emitted(order, "payment.requested") == 1
    # due again after the last request: failed with compensation, and the clock stops
    _overdue(confirmed_order.id)
    assert payment_deadlines_enforce() == 1
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_due_at) == ("payment_failed", None)
    assert emitted(order, "order.payment_failed") == 1
    assert payment_deadlines_enforce() == 0


def test_one_orders_failing_timeout_does_not_stop_the_others(confirmed_order, catalogue, customer_client,
                                                             monkeypatch):
    other_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=other_id, confirmed=True, message="All items reserved")
    _overdue(confirmed_order.id)
    _overdue(other_id)
    real = services.order_payment_timeout

    def broken_for_the_first(*, order_id, request_number):
        if str(order_id) == str(confirmed_order.id):
            raise RuntimeError("a bug")
        return real(order_id=order_id, request_number=request_number)

    monkeypatch.setattr(services, "order_payment_timeout", broken_for_the_first)
    # when
    assert payment_deadlines_enforce() == 2
    # then: the other order was asked about again; the broken one waits for the next tick
    assert Order.objects.get(pk=other_id).payment_requests == 2
    assert Order.objects.get(pk=confirmed_order.id).payment_requests == 1


def test_an_answered_or_cancelled_order_leaves_the_clock(confirmed_order, catalogue, customer_client):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    assert Order.objects.get(pk=confirmed_order.id).payment_due_at is None
    other_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=other_id, confirmed=True, message="All items reserved")
    assert customer_client.post(f"/api/orders/{other_id}/cancel/").status_code == 200
    assert Order.objects.get(pk=other_id).payment_due_at is None
    assert payment_deadlines_enforce() == 0


def test_cancel_before_picking_cancels_and_publishes_the_compensation(confirmed_order, customer_client):
    response = customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert emitted(confirmed_order, "order.cancelled") == 1
    # cancelling again answers the same and publishes nothing more
    assert customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/").status_code == 200
    assert emitted(confirmed_order, "order.cancelled") == 1


def test_a_payment_captured_after_cancellation_changes_nothing_in_the_shop(confirmed_order, customer_client):
    customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/")
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-9", reason="")
    order_payment_result_apply(order_id=confirmed_order.id, status="refunded", reference="RFD-9", reason="")
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_status) == ("cancelled", "refunded")
    assert emitted(order, "order.paid") == 0


def test_cancel_after_picking_started_is_409_with_the_reason(confirmed_order, customer_client):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    response = customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/")
    assert response.status_code == 409
    assert "picking has started" in response.json()["detail"]
    assert Order.objects.get(pk=confirmed_order.id).status == "paid"


def test_only_the_orders_customer_may_cancel(confirmed_order, make_customer):
    _, other = make_customer("mallory")
    assert other.post(f"/api/orders/{confirmed_order.id}/cancel/").status_code == 404
    assert APIClient().post(f"/api/orders/{confirmed_order.id}/cancel/").status_code == 401
    assert Order.objects.get(pk=confirmed_order.id).status == "confirmed"

"""The shop as the order saga's coordinator: payment requests, results, timeouts, cancellation."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop.models import Order
from shop.services import (
    PAYMENT_DEADLINE_DUE,
    order_confirmation_apply,
    order_payment_result_apply,
    order_payment_timeout,
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


def payment_requests(order) -> list[OutboxMessage]:
    return list(OutboxMessage.objects.filter(correlation_id=str(order.id), type="payment.requested").order_by("id"))


def deadlines(order) -> list[OutboxMessage]:
    """The order's payment deadline timers not sent yet."""
    return list(OutboxMessage.objects.filter(correlation_id=str(order.id), type=PAYMENT_DEADLINE_DUE,
                                             published_at__isnull=True))


def test_confirmation_asks_payments_to_charge_the_order_total(confirmed_order):
    # then: request 1, point-to-point to payments, with everything payments needs to charge
    [request] = payment_requests(confirmed_order)
    assert (request.exchange, request.queue, request.producer) == ("logistics", "payment_requests", "shop")
    assert request.payload == {"order_id": str(confirmed_order.id), "request_number": 1, "amount": "1539.97",
                               "currency": "EUR", "method": "credit_card"}
    assert request.due_at is None  # sent at once, not a timer
    assert (confirmed_order.status, confirmed_order.payment_requests) == ("confirmed", 1)


@pytest.mark.django_db(transaction=True)  # the service's transaction is the outermost, as in a worker
def test_the_payment_request_and_its_deadline_commit_together_or_not_at_all(catalogue, customer_client, monkeypatch):
    # given: a placed order, and the outbox refusing the deadline timer
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]

    def timer_refused(*args, **kwargs):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr("shop.services.timer_set", timer_refused)
    # when
    with pytest.raises(RuntimeError):
        order_confirmation_apply(order_id=order_id, confirmed=True, message="All items reserved")
    # then: no request without its deadline, and the order as it was
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.payment_requests, order.warehouse_status) == ("new", 0, "")
    assert payment_requests(order) == []
    assert list(order.history.values_list("status", flat=True)) == ["new"]


def test_a_rejected_order_asks_for_no_payment(catalogue, customer_client):
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=order_id, confirmed=False, message="Not enough stock")
    order = Order.objects.get(pk=order_id)
    assert (order.status, order.warehouse_status, order.payment_requests) == ("rejected", "rejected", 0)
    assert payment_requests(order) == []
    assert deadlines(order) == []


def test_the_payment_method_travels_in_the_request(catalogue, customer_client):
    order_id = customer_client.post("/api/orders/", {**SEED_ORDER, "payment_method": "card_declined"},
                                    format="json").json()["order_id"]
    order_confirmation_apply(order_id=order_id, confirmed=True, message="All items reserved")
    [request] = payment_requests(Order.objects.get(pk=order_id))
    assert request.payload["method"] == "card_declined"


def test_captured_payment_makes_the_order_paid_and_hands_it_to_picking_once(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_status, order.payment_reference) == ("paid", "captured", "PAY-1")
    assert emitted(order, "order.paid") == 1
    row = OutboxMessage.objects.get(type="order.paid")
    assert (row.exchange, row.queue) == ("logistics", "fulfilment_requests")
    assert row.payload == {"order_id": str(order.id)}


def test_declined_payment_fails_the_order_and_publishes_the_compensation_once(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="declined", reference="", reason="card declined")
    order_payment_result_apply(order_id=confirmed_order.id, status="declined", reference="", reason="card declined")
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_status, order.payment_message) == (
        "payment_failed", "declined", "payment declined: card declined")
    assert emitted(order, "order.payment_failed") == 1
    row = OutboxMessage.objects.get(type="order.payment_failed")
    assert (row.exchange, row.queue) == ("logistics.events", "order.payment_failed")
    assert row.payload == {"order_id": str(order.id), "message": "payment declined: card declined"}


def test_an_unanswered_payment_is_asked_again_then_failed(confirmed_order, settings):
    settings.PAYMENT_MAX_REQUESTS = 3
    # when: the first two waits end with no answer
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)  # a stale, repeated check
    order_payment_timeout(order_id=confirmed_order.id, request_number=2)
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_requests) == ("confirmed", 3)
    assert [row.payload["request_number"] for row in payment_requests(order)] == [1, 2, 3]
    # when: the last one too
    order_payment_timeout(order_id=confirmed_order.id, request_number=3)
    order = Order.objects.get(pk=confirmed_order.id)
    assert order.status == "payment_failed"
    assert order.payment_message == "no answer from payments after 3 requests"
    assert emitted(order, "order.payment_failed") == 1
    assert len(payment_requests(order)) == 3


def test_a_deadline_asks_again_for_the_same_amount(confirmed_order):
    # when
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)
    # then: request 2, the same charge
    first, second = payment_requests(confirmed_order)
    assert (second.exchange, second.queue) == ("logistics", "payment_requests")
    assert second.payload == {"order_id": str(confirmed_order.id), "request_number": 2, "amount": "1539.97",
                              "currency": "EUR", "method": "credit_card"}
    assert {k: v for k, v in first.payload.items() if k != "request_number"} == {
        k: v for k, v in second.payload.items() if k != "request_number"}


def test_an_answer_stops_the_clock(confirmed_order):
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)
    assert Order.objects.get(pk=confirmed_order.id).status == "paid"
    assert len(payment_requests(confirmed_order)) == 1


def test_confirmation_sets_a_payment_deadline_timer_and_each_request_a_new_one(confirmed_order, settings):
    settings.PAYMENT_MAX_REQUESTS = 2
    order = Order.objects.get(pk=confirmed_order.id)
    [timer] = deadlines(order)
    assert (timer.exchange, timer.queue) == ("logistics", "payment_results")  # the shop's own queue
    assert timer.payload == {"order_id": str(order.id), "request_number": 1}
    assert timer.due_at == timer.next_attempt_at == order.payment_due_at > timezone.now()
    assert len(payment_requests(order)) == 1
    # the deadline is due: asked again, with a new deadline (one timer, never two)
    order_payment_timeout(order_id=order.id, request_number=1)
    order = Order.objects.get(pk=order.id)
    assert (order.status, order.payment_requests) == ("confirmed", 2)
    [timer] = deadlines(order)
    assert timer.payload == {"order_id": str(order.id), "request_number": 2}
    assert len(payment_requests(order)) == 2
    # due again after the last request: failed with compensation, and the clock stops
    order_payment_timeout(order_id=order.id, request_number=2)
    order = Order.objects.get(pk=order.id)
    assert (order.status, order.payment_due_at) == ("payment_failed", None)
    assert emitted(order, "order.payment_failed") == 1
    assert deadlines(order) == []


def test_an_answered_or_cancelled_order_cancels_its_deadline_timer(confirmed_order, catalogue, customer_client):
    assert len(deadlines(confirmed_order)) == 1
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-1", reason="")
    assert Order.objects.get(pk=confirmed_order.id).payment_due_at is None
    assert deadlines(confirmed_order) == []
    other_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    order_confirmation_apply(order_id=other_id, confirmed=True, message="All items reserved")
    other = Order.objects.get(pk=other_id)
    assert len(deadlines(other)) == 1
    assert customer_client.post(f"/api/orders/{other_id}/cancel/").status_code == 200
    assert Order.objects.get(pk=other_id).payment_due_at is None
    assert deadlines(other) == []
    # a deadline that was already on its way when the order was cancelled changes nothing
    order_payment_timeout(order_id=other_id, request_number=1)
    assert Order.objects.get(pk=other_id).status == "cancelled"
    assert len(payment_requests(other)) == 1


def test_a_stale_deadline_of_an_earlier_request_changes_nothing(confirmed_order):
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)  # request 2 owns the clock now
    order_payment_timeout(order_id=confirmed_order.id, request_number=1)  # the first deadline, late again
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_requests) == ("confirmed", 2)
    assert [row.payload["request_number"] for row in payment_requests(order)] == [1, 2]


def test_cancel_before_picking_cancels_and_publishes_the_compensation(confirmed_order, customer_client):
    response = customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert emitted(confirmed_order, "order.cancelled") == 1
    row = OutboxMessage.objects.get(type="order.cancelled")
    assert (row.exchange, row.queue) == ("logistics.events", "order.cancelled")
    assert row.payload == {"order_id": str(confirmed_order.id), "message": "cancelled by the customer"}
    # cancelling again answers the same and publishes nothing more
    assert customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/").status_code == 200
    assert emitted(confirmed_order, "order.cancelled") == 1


def test_a_payment_captured_after_cancellation_changes_nothing_in_the_shop(confirmed_order, customer_client):
    customer_client.post(f"/api/orders/{confirmed_order.id}/cancel/")
    order_payment_result_apply(order_id=confirmed_order.id, status="captured", reference="PAY-9", reason="")
    order_payment_result_apply(order_id=confirmed_order.id, status="refunded", reference="RFD-9", reason="")
    order = Order.objects.get(pk=confirmed_order.id)
    assert (order.status, order.payment_status, order.payment_message) == ("cancelled", "refunded",
                                                                           "refunded (RFD-9)")
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

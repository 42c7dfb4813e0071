from decimal import Decimal

import pytest

from messaging.models import OutboxMessage
from payments.models import Payment
from payments.services import payment_charge, payment_compensate, payment_request
from shop.services import Contact, OrderItem, order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def place(catalogue, make_customer):
    customer, _ = make_customer()

    def place_order(method: str = "credit_card", items=(("PRD001", 1), ("PRD003", 2))):
        return order_place(customer=customer, contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
                           shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
                           items=[OrderItem(product_id=p, quantity=q) for p, q in items],
                           shipping_method="express", payment_method=method)

    return place_order


def charge_timers(order_id) -> list[OutboxMessage]:
    """The provider's answers still to come: payments' charge timers not sent yet."""
    return list(OutboxMessage.objects.filter(correlation_id=str(order_id), type="payment.charge_due",
                                             published_at__isnull=True))


def results(order_id) -> list[tuple[str, str]]:
    return list(OutboxMessage.objects.filter(queue="payment_results", correlation_id=str(order_id))
                .order_by("id").values_list("type", "payload__reference"))


def test_the_amount_is_the_orders_catalogue_total_and_the_charge_is_a_timer(place):
    # given
    order = place()
    # when
    payment = payment_request(order_id=order.id)
    # then
    assert (payment.amount, payment.currency, payment.method, payment.status) == (
        Decimal("1539.97"), "EUR", "credit_card", "pending")
    [timer] = charge_timers(order.id)
    assert (timer.queue, timer.payload) == ("payment_requests", {"order_id": str(order.id), "payment_id": str(payment.id)})
    assert timer.due_at is not None


def test_approved_charge_is_captured_and_answered_once(place):
    order = place()
    payment = payment_request(order_id=order.id)
    payment_charge(payment_id=payment.id)
    payment_charge(payment_id=payment.id)  # a repeated timer
    payment.refresh_from_db()
    assert payment.status == "captured" and payment.provider_reference.startswith("PAY-")
    assert results(order.id) == [("payment.captured", payment.provider_reference)]


def test_the_documented_test_method_is_always_declined(place):
    order = place(method="card_declined")
    payment = payment_charge(payment_id=payment_request(order_id=order.id).id)
    assert (payment.status, payment.reason) == ("declined", "card declined by the issuer")
    assert [t for t, _ in results(order.id)] == ["payment.declined"]


def test_asked_again_after_an_answer_it_answers_again_without_charging(place):
    order = place()
    payment = payment_charge(payment_id=payment_request(order_id=order.id).id)
    again = payment_request(order_id=order.id)
    assert again.attempts == 2 and again.status == "captured"
    assert results(order.id) == [("payment.captured", payment.provider_reference)] * 2
    assert len(charge_timers(order.id)) == 1  # the first request's; none for the second


def test_compensation_voids_a_pending_payment_so_it_is_never_charged(place):
    order = place()
    payment = payment_request(order_id=order.id)
    payment_compensate(order_id=order.id, reason="order cancelled")
    assert charge_timers(order.id) == []  # the provider's answer will not be asked for
    payment_charge(payment_id=payment.id)  # a charge timer that was already on its way
    payment.refresh_from_db()
    assert payment.status == "voided"
    assert results(order.id) == []


def test_compensation_refunds_a_captured_payment_exactly_once(place):
    order = place()
    payment = payment_charge(payment_id=payment_request(order_id=order.id).id)
    payment_compensate(order_id=order.id, reason="order cancelled")
    payment_compensate(order_id=order.id, reason="order cancelled")  # duplicate event
    payment.refresh_from_db()
    assert payment.status == "refunded" and payment.refund_reference.startswith("RFD-")
    assert [t for t, _ in results(order.id)] == ["payment.captured", "payment.refunded"]


def test_a_cancellation_that_overtakes_the_request_prevents_the_charge(place):
    order = place()
    payment_compensate(order_id=order.id, reason="order cancelled")
    payment = payment_request(order_id=order.id)
    assert payment.status == "voided"
    assert charge_timers(order.id) == []
    assert Payment.objects.count() == 1

"""Payments: what the shop asks for is charged once; the status never moves back or repeats an effect."""

import threading
import time
import uuid
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from config.errors import DomainError
from messaging.consumer import deliver, deliver_together
from messaging.envelope import InvalidMessage, Message
from messaging.models import OutboxMessage, ProcessedMessage
from messaging.registry import route_for
from messaging.topology import PAYMENT_REQUESTS
from payments.models import Payment
from payments.provider import SimulatedPaymentProvider
from payments.services import payment_charge, payment_compensate, payment_request

pytestmark = pytest.mark.django_db

AMOUNT = Decimal("1539.97")


class CountingProvider(SimulatedPaymentProvider):
    """The simulated provider, counting what it was asked to do."""

    def __init__(self) -> None:
        self.charges: list[str] = []
        self.refunds: list[str] = []
        self.voids: list[str] = []

    def charge(self, *, idempotency_key, amount, currency, method):
        self.charges.append(idempotency_key)
        return super().charge(idempotency_key=idempotency_key, amount=amount, currency=currency, method=method)

    def refund(self, *, idempotency_key, reference, amount, currency):
        self.refunds.append(idempotency_key)
        return super().refund(idempotency_key=idempotency_key, reference=reference, amount=amount, currency=currency)

    def void(self, *, idempotency_key, charge_key):
        self.voids.append(idempotency_key)
        return super().void(idempotency_key=idempotency_key, charge_key=charge_key)


@pytest.fixture
def provider(monkeypatch) -> CountingProvider:
    provider = CountingProvider()
    monkeypatch.setattr("payments.services.payment_provider", lambda: provider)
    return provider


@pytest.fixture
def order_id() -> uuid.UUID:
    return uuid.uuid4()


def request(order_id, method: str = "credit_card") -> Payment:
    return payment_request(order_id=order_id, amount=AMOUNT, currency="EUR", method=method)


def charge_timers(order_id) -> list[OutboxMessage]:
    """The provider's answers still to come: payments' charge timers not sent yet."""
    return list(OutboxMessage.objects.filter(correlation_id=str(order_id), type="payment.charge_due",
                                             published_at__isnull=True))


def results(order_id) -> list[tuple[str, str]]:
    return list(OutboxMessage.objects.filter(queue="payment_results", correlation_id=str(order_id))
                .order_by("id").values_list("type", "payload__reference"))


def result_types(order_id) -> list[str]:
    return [message_type for message_type, _ in results(order_id)]


def test_the_first_request_makes_a_pending_payment_of_the_amount_asked_and_the_charge_is_a_timer(order_id):
    # when
    payment = request(order_id)
    # then
    assert (payment.amount, payment.currency, payment.method, payment.status, payment.attempts) == (
        AMOUNT, "EUR", "credit_card", "pending", 1)
    [timer] = charge_timers(order_id)
    assert (timer.queue, timer.payload) == (
        "payment_requests", {"order_id": str(order_id), "payment_id": str(payment.id)})
    assert timer.due_at is not None
    assert results(order_id) == []


def test_approved_charge_is_captured_once_however_often_its_timer_comes(order_id, provider):
    # given
    payment = request(order_id)
    # when: the timer, then the same timer again (a repeat) and a late second one
    payment_charge(payment_id=payment.id)
    payment_charge(payment_id=payment.id)
    payment_charge(payment_id=payment.id)
    # then
    payment.refresh_from_db()
    assert payment.status == "captured"
    assert payment.provider_reference.startswith("PAY-")
    assert provider.charges == [f"{payment.id}:1"]  # the idempotency key: payment id and attempt
    assert results(order_id) == [("payment.captured", payment.provider_reference)]


def test_the_documented_test_method_is_always_declined(order_id):
    # given
    payment = request(order_id, method="card_declined")
    # when
    payment = payment_charge(payment_id=payment.id)
    # then
    assert (payment.status, payment.reason) == ("declined", "card declined by the issuer")
    assert result_types(order_id) == ["payment.declined"]


def test_asked_again_while_pending_it_asks_the_provider_again_and_charges_once(order_id, provider):
    # given: the shop heard nothing back and asks again
    payment = request(order_id)
    again = request(order_id)
    # when: both answers come
    for _ in charge_timers(order_id):
        payment_charge(payment_id=payment.id)
    # then
    assert (again.status, again.attempts) == ("pending", 2)
    assert len(provider.charges) == 1
    assert result_types(order_id) == ["payment.captured"]


def test_asked_again_after_an_answer_it_answers_again_without_charging(order_id, provider):
    # given
    payment = payment_charge(payment_id=request(order_id).id)
    # when
    again = request(order_id)
    # then
    assert (again.attempts, again.status) == (2, "captured")
    assert results(order_id) == [("payment.captured", payment.provider_reference)] * 2
    assert len(charge_timers(order_id)) == 1  # the first request's; none for the second
    assert len(provider.charges) == 1


def test_compensation_voids_a_pending_payment_and_a_late_timer_charges_nothing(order_id, provider):
    # given
    payment = request(order_id)
    # when
    payment_compensate(order_id=order_id, reason="order cancelled")
    # then: the provider's answer will not be asked for
    assert charge_timers(order_id) == []
    # when: a charge timer that was already on its way
    payment_charge(payment_id=payment.id)
    # then
    payment.refresh_from_db()
    assert (payment.status, payment.reason, payment.captured_at) == ("voided", "order cancelled", None)
    assert provider.charges == []
    assert results(order_id) == []


def test_compensation_refunds_a_captured_payment_exactly_once(order_id, provider):
    # given
    payment = payment_charge(payment_id=request(order_id).id)
    # when: the cancellation, and the same event again
    payment_compensate(order_id=order_id, reason="order cancelled")
    payment_compensate(order_id=order_id, reason="order cancelled")
    # then
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert payment.refund_reference.startswith("RFD-")
    assert provider.refunds == [f"refund-{payment.id}"]
    assert result_types(order_id) == ["payment.captured", "payment.refunded"]


def test_a_late_timer_after_a_refund_neither_charges_nor_answers(order_id, provider):
    # given
    payment = payment_charge(payment_id=request(order_id).id)
    payment_compensate(order_id=order_id, reason="order cancelled")
    # when
    payment_charge(payment_id=payment.id)
    # then
    payment.refresh_from_db()
    assert payment.status == "refunded"
    assert (len(provider.charges), len(provider.refunds)) == (1, 1)
    assert result_types(order_id) == ["payment.captured", "payment.refunded"]


def test_a_cancellation_before_any_request_leaves_a_voided_payment_and_a_late_request_charges_nothing(
        order_id, provider):
    # given: the cancellation overtook the first request
    voided = payment_compensate(order_id=order_id, reason="order cancelled")
    # when
    payment = request(order_id)
    request(order_id)  # and a second one, after the shop's deadline
    # then
    assert (voided.status, voided.amount, voided.currency) == ("voided", None, "")
    payment.refresh_from_db()
    assert (payment.status, payment.amount, payment.currency, payment.attempts) == ("voided", AMOUNT, "EUR", 2)
    assert charge_timers(order_id) == []
    assert provider.charges == []
    assert results(order_id) == []
    assert Payment.objects.count() == 1


# The whole status machine: every message in every status. Only pending -> captured | declined
# | voided and captured -> refunded move; everything else changes no status and repeats no effect.
@pytest.mark.parametrize(("start", "event", "expected_status", "expected_results", "provider_calls", "timers"), [
    ("pending", "charge_due", "captured", ["payment.captured"], (1, 0), 0),
    ("pending", "request", "pending", [], (0, 0), 1),
    ("pending", "compensate", "voided", [], (0, 0), 0),
    ("captured", "charge_due", "captured", [], (0, 0), 0),
    ("captured", "request", "captured", ["payment.captured"], (0, 0), 0),
    ("captured", "compensate", "refunded", ["payment.refunded"], (0, 1), 0),
    ("declined", "charge_due", "declined", [], (0, 0), 0),
    ("declined", "request", "declined", ["payment.declined"], (0, 0), 0),
    ("declined", "compensate", "declined", [], (0, 0), 0),
    ("voided", "charge_due", "voided", [], (0, 0), 0),
    ("voided", "request", "voided", [], (0, 0), 0),
    ("voided", "compensate", "voided", [], (0, 0), 0),
    ("refunded", "charge_due", "refunded", [], (0, 0), 0),
    ("refunded", "request", "refunded", [], (0, 0), 0),
    ("refunded", "compensate", "refunded", [], (0, 0), 0),
])
def test_the_status_only_moves_forward_and_each_effect_happens_once(
        order_id, provider, start, event, expected_status, expected_results, provider_calls, timers):
    # given: a payment in ``start``
    payment = Payment.objects.create(order_id=order_id, amount=AMOUNT, currency="EUR", method="credit_card",
                                     status=start, provider_reference="PAY-1" if start != "pending" else "",
                                     attempts=1)
    # when
    if event == "charge_due":
        payment_charge(payment_id=payment.id)
    elif event == "request":
        request(order_id)
    else:
        payment_compensate(order_id=order_id, reason="order cancelled")
    # then
    payment.refresh_from_db()
    assert payment.status == expected_status
    assert result_types(order_id) == expected_results
    assert (len(provider.charges), len(provider.refunds)) == provider_calls
    assert len(charge_timers(order_id)) == timers  # a provider's answer asked for again only while pending


# -- handlers: what arrives on payment_requests, checked against its contract ------------------
def message(message_type: str, payload: dict) -> Message:
    return Message(queue=PAYMENT_REQUESTS, message_id=str(uuid.uuid4()), type=message_type,
                   correlation_id=payload.get("order_id", ""), causation_id="", payload=payload)


def test_a_payment_request_is_charged_from_its_payload(order_id):
    # when
    deliver(route_for(PAYMENT_REQUESTS), message("payment.requested", {
        "order_id": str(order_id), "request_number": 1, "amount": "99.99", "currency": "EUR",
        "method": "credit_card"}))
    # then
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.amount, payment.currency, payment.method, payment.status) == (
        Decimal("99.99"), "EUR", "credit_card", "pending")
    assert len(charge_timers(order_id)) == 1


VALID_REQUEST = {"request_number": 1, "amount": "9.99", "currency": "EUR", "method": "credit_card"}


@pytest.mark.django_db(transaction=True)  # charge_due and order.cancelled ask the provider outside any transaction
@pytest.mark.parametrize(("message_type", "payload"), [
    ("payment.requested", {**VALID_REQUEST, "order_id": None}),  # no order
    ("payment.requested", {**VALID_REQUEST, "amount": "-1.00"}),
    ("payment.requested", {**VALID_REQUEST, "amount": None}),
    ("payment.requested", {**VALID_REQUEST, "request_number": 0}),
    ("payment.requested", {**VALID_REQUEST, "currency": "EURO"}),
    ("payment.charge_due", {"payment_id": "not-a-uuid"}),
    ("order.cancelled", {"order_id": None}),
    ("order.confirmed", {}),  # payments hears the shop's payment.requested, no longer order.confirmed
])
def test_a_payload_that_breaks_its_contract_is_refused_for_parking_and_changes_nothing(
        order_id, message_type, payload):
    # given: the order id filled in where the payload names none; None leaves a field out
    payload = {"order_id": str(order_id), **payload}
    bad = message(message_type, {key: value for key, value in payload.items() if value is not None})
    # when / then: InvalidMessage, which the worker parks as a dead letter
    with pytest.raises(InvalidMessage):
        deliver(route_for(PAYMENT_REQUESTS), bad)
    assert not Payment.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not ProcessedMessage.objects.filter(message_id=bad.message_id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_request_and_a_cancellation_at_once_make_one_payment_that_is_never_charged(order_id):
    # given: one worker makes the payment and holds its transaction open while the cancellation arrives
    created, second_started = threading.Event(), threading.Event()
    errors = []

    def first_request():
        try:
            with transaction.atomic():
                request(order_id)
                created.set()
                second_started.wait(5)
                time.sleep(0.3)  # the cancellation's insert now waits on this one
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    def cancellation():
        second_started.set()
        try:
            payment_compensate(order_id=order_id, reason="order cancelled")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    # when
    holder = threading.Thread(target=first_request)
    holder.start()
    created.wait(5)
    late = threading.Thread(target=cancellation)
    late.start()
    holder.join(10)
    late.join(10)
    # then
    assert errors == []
    payment = Payment.objects.get(order_id=order_id)
    assert (payment.status, payment.amount) == ("voided", AMOUNT)
    assert charge_timers(order_id) == []


@pytest.mark.django_db(transaction=True)  # the provider is asked before the worker's transaction opens
def test_charge_timers_due_together_lock_their_payments_at_once_and_each_answers_as_its_own(provider):
    # given: three pending payments; their timers due together, one of them twice, beside a
    # request of another type and a timer for a payment that does not exist
    orders = [uuid.uuid4() for _ in range(3)]
    payments = [request(order) for order in orders]
    timers = [message("payment.charge_due", {"order_id": str(p.order_id), "payment_id": str(p.id)}) for p in payments]
    repeat = message("payment.charge_due", {"order_id": str(orders[0]), "payment_id": str(payments[0].id)})
    unknown = message("payment.charge_due", {"order_id": str(uuid.uuid4()), "payment_id": str(uuid.uuid4())})
    other = uuid.uuid4()
    new_request = message("payment.requested", {**VALID_REQUEST, "order_id": str(other)})
    batch = [timers[0], timers[1], repeat, unknown, new_request, timers[2]]
    # when: a worker handles them in one transaction
    with CaptureQueriesContext(connection) as statements:
        outcomes = deliver_together(route_for(PAYMENT_REQUESTS), batch)
    # then: every payment charged once, its answer caused by its own timer
    assert outcomes == ["handled"] * 6
    assert sorted(provider.charges) == sorted(f"{p.id}:1" for p in payments)  # asked concurrently
    for order, timer in zip(orders, timers, strict=True):
        [answer] = OutboxMessage.objects.filter(queue="payment_results", correlation_id=str(order))
        assert (answer.type, answer.causation_id) == ("payment.captured", timer.message_id)
    assert Payment.objects.get(order_id=other).status == "pending"  # the request between them was handled too
    # before the transaction, every timer's payment locked in one statement (to record the
    # attempt); in it, the first run of timers (four messages) in one, the last one in another;
    # none was looked up on its own
    reads = [q["sql"] for q in statements.captured_queries
             if q["sql"].startswith("SELECT") and 'FROM "payments_payment"' in q["sql"]]
    assert len([sql for sql in reads if '"payments_payment"."id" IN (' in sql]) == 3
    assert not [sql for sql in reads if '"payments_payment"."id" = ' in sql]


def test_a_request_for_another_amount_than_the_payments_is_refused_and_not_charged():
    # given: the order's payment, requested for 10.00 EUR by card and captured
    order_id = uuid.uuid4()
    payment = payment_request(order_id=order_id, amount=Decimal("10.00"), currency="EUR", method="credit_card")
    payment_charge(payment_id=payment.id)
    emitted = OutboxMessage.objects.count()
    # when: a payment.requested for the same order asks for more (an edited or forged message)
    with pytest.raises(DomainError) as refused, transaction.atomic():  # the handler's transaction
        payment_request(order_id=order_id, amount=Decimal("999.00"), currency="EUR", method="credit_card")
    # then: refused naming both amounts; the payment is as it was, nothing new emitted
    assert refused.value.message == (
        f"payment.requested for order {order_id} asks 999.00 EUR by credit_card, but its payment {payment.id} "
        f"is for 10.00 EUR by credit_card: not charged")
    payment.refresh_from_db()
    assert (payment.amount, payment.status, payment.attempts) == (Decimal("10.00"), "captured", 1)
    assert OutboxMessage.objects.count() == emitted

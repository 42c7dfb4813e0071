"""The payment saga and its compensations through the real broker and processes."""

import copy
import time

import pytest

from messaging.models import DeadLetter
from payments.models import Payment
from shop.models import Order
from simulation.demo_data import SEED_ORDER
from support.models import CustomerNotification
from tests.harness import WORKERS, System, wait_until
from warehouse.models import Reservation, StockItem

pytestmark = pytest.mark.e2e


def order_body(product_id: str, quantity: int, method: str = "credit_card") -> dict:
    body = copy.deepcopy(SEED_ORDER)
    body["items"] = [{"product_id": product_id, "quantity": quantity}]
    body["payment_method"] = method
    return body


def status_of(order_id: str) -> str:
    return Order.objects.get(pk=order_id).status


def stock_of(sku: str) -> int:
    return StockItem.objects.get(sku=sku).quantity_on_hand


def wait_status(system: System, order_id: str, statuses: set[str], timeout: float = 60) -> None:
    try:
        wait_until(lambda: status_of(order_id) in statuses, timeout=timeout, what=f"{order_id} in {statuses}")
    except AssertionError:
        print(system.log_tail())
        raise


def test_declined_payment_gives_the_stock_back_and_the_same_stock_then_sells(system, catalogue, customer_client):
    # given
    system.start_all()
    # when: the whole remaining stock of PRD002, paid with the card that is always declined
    declined = customer_client.post("/api/orders/", order_body("PRD002", 15, "card_declined"), format="json")
    declined_id = declined.json()["order_id"]
    wait_status(system, declined_id, {"payment_failed"})
    wait_until(lambda: Reservation.objects.get(order_id=declined_id).status == "released", timeout=30,
               what="reservation released")
    # then: compensated -- stock back, nothing charged, the customer told
    assert stock_of("PRD002") == 15
    assert Payment.objects.get(order_id=declined_id).status == "declined"
    wait_until(lambda: CustomerNotification.objects.filter(order_id=declined_id, status="payment_failed").exists(),
               timeout=30, what="payment failure notification")
    # when: the same quantity, paid properly
    paid = customer_client.post("/api/orders/", order_body("PRD002", 15), format="json").json()["order_id"]
    wait_status(system, paid, {"delivered"}, timeout=90)
    # then
    assert stock_of("PRD002") == 0
    assert Payment.objects.get(order_id=paid).status == "captured"
    assert Order.objects.get(pk=declined_id).status == "payment_failed"
    assert DeadLetter.objects.count() == 0
    print("declined order: payment_failed, stock back to 15; same 15 sold and delivered; "
          f"stock now {stock_of('PRD002')}")


def test_cancel_with_a_captured_payment_refunds_it_and_returns_the_stock(system, catalogue, customer_client):
    # given: the shop does not hear payment results yet, so the order stays cancellable
    # although the payment is captured (a capture racing the customer's cancellation)
    system.start_all([w for w in WORKERS if w != "payment_results"])
    order_id = customer_client.post("/api/orders/", order_body("PRD001", 3), format="json").json()["order_id"]
    # (order.confirmed reaches the shop and payments side by side: either may be handled first)
    wait_until(lambda: Payment.objects.filter(order_id=order_id, status="captured").exists()
               and status_of(order_id) == "confirmed", timeout=60, what="payment captured, order confirmed")
    assert stock_of("PRD001") == 7
    # when
    response = customer_client.post(f"/api/orders/{order_id}/cancel/")
    system.start("payment_results")
    # then
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    wait_until(lambda: Payment.objects.get(order_id=order_id).status == "refunded", timeout=60, what="refund")
    wait_until(lambda: stock_of("PRD001") == 10, timeout=60, what="stock returned")
    wait_until(lambda: Order.objects.get(pk=order_id).payment_status == "refunded", timeout=60,
               what="shop told of the refund")
    assert status_of(order_id) == "cancelled"
    assert Reservation.objects.get(order_id=order_id).status == "released"
    assert CustomerNotification.objects.filter(order_id=order_id, status="cancelled").count() == 1
    time.sleep(1)  # a late duplicate would show now
    assert Payment.objects.get(order_id=order_id).status == "refunded"
    assert stock_of("PRD001") == 10


def test_cancel_after_picking_started_is_refused(system, catalogue, customer_client):
    system.start_all()
    order_id = customer_client.post("/api/orders/", order_body("PRD004", 1), format="json").json()["order_id"]
    wait_status(system, order_id, {"paid", "picked_up", "in_transit", "out_for_delivery", "delivered"})
    response = customer_client.post(f"/api/orders/{order_id}/cancel/")
    assert response.status_code == 409
    assert "cannot be cancelled" in response.json()["detail"] or "picking has started" in response.json()["detail"]
    wait_status(system, order_id, {"delivered"}, timeout=90)
    assert stock_of("PRD004") == 24


def test_payment_that_never_answers_is_retried_then_failed_with_compensation(transactional_db, broker, catalogue,
                                                                            customer_client):
    # given: payments is down; the shop waits 0.5 s per request, three requests
    system = System(env={"PAYMENT_TIMEOUT_SECONDS": "0.5", "PAYMENT_MAX_REQUESTS": "3"})
    system.start_all([w for w in WORKERS if w != "payment_requests"])
    try:
        order_id = customer_client.post("/api/orders/", order_body("PRD003", 4), format="json").json()["order_id"]
        # when
        wait_status(system, order_id, {"payment_failed"}, timeout=60)
        order = Order.objects.get(pk=order_id)
        wait_until(lambda: stock_of("PRD003") == 20, timeout=30, what="stock returned")
        # then: payments, once back, sees the whole story and never keeps money
        system.start("payment_requests")
        wait_until(lambda: Payment.objects.filter(order_id=order_id, status__in=["voided", "refunded"]).exists(),
                   timeout=60, what="payment voided or refunded")
        assert order.payment_requests == 3
        assert order.payment_message == "no answer from payments after 3 requests"
        print(f"timeout path: {order.payment_requests} requests, then payment_failed; "
              f"payment {Payment.objects.get(order_id=order_id).status}; stock back to {stock_of('PRD003')}")
    finally:
        system.stop_all()

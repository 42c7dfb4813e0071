"""Idempotency-Key on placing and cancelling orders: one order per key and body, whatever the retries."""

import copy
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone
from rest_framework.test import APIClient

from messaging.models import OutboxMessage
from shop.idempotency import idempotent_requests_prune
from shop.models import IdempotentRequest, Order
from simulation.demo_data import SEED_ORDER


@pytest.mark.django_db
def test_the_same_key_and_body_return_the_first_answer_and_make_one_order(catalogue, customer_client):
    # when: a client retries the same request three times
    answers = [customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="retry-1")
               for _ in range(3)]
    # then
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert answers[1].json() == answers[2].json() == answers[0].json()
    assert [a.get("Idempotent-Replayed") for a in answers] == [None, "true", "true"]
    assert Order.objects.count() == 1
    assert OutboxMessage.objects.filter(type="order.placed").count() == 1


@pytest.mark.django_db
def test_the_body_is_compared_as_json_not_as_text(catalogue, customer_client):
    reordered = dict(reversed(list(copy.deepcopy(SEED_ORDER).items())))
    first = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="k")
    again = customer_client.post("/api/orders/", reordered, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["order_id"] == first.json()["order_id"]


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422_and_changes_nothing(catalogue, customer_client):
    # given
    customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = {**SEED_ORDER, "items": [{"product_id": "PRD004", "quantity": 1}]}
    # when
    response = customer_client.post("/api/orders/", other, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    # then
    assert response.status_code == 422
    assert list(response.json()) == ["Idempotency-Key"]
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_user_and_other_keys_or_none_make_new_orders(catalogue, make_customer):
    _, alice = make_customer("alice")
    _, bob = make_customer("bob")
    codes = [alice.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="same").status_code,
             bob.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="same").status_code,
             alice.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="other").status_code,
             alice.post("/api/orders/", SEED_ORDER, format="json").status_code,
             alice.post("/api/orders/", SEED_ORDER, format="json").status_code]
    assert codes == [201] * 5
    assert Order.objects.count() == 5


@pytest.mark.django_db
def test_a_refused_request_keeps_no_key_so_a_corrected_retry_is_placed(catalogue, customer_client):
    bad = {**SEED_ORDER, "shipping_method": "teleport"}
    assert customer_client.post("/api/orders/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 400
    assert IdempotentRequest.objects.count() == 0
    assert customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "naïve"])
def test_a_malformed_key_is_400_naming_the_header(catalogue, customer_client, key):
    response = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert list(response.json()) == ["Idempotency-Key"]
    assert Order.objects.count() == 0


@pytest.mark.django_db
def test_after_24_hours_a_key_places_anew_and_old_keys_are_pruned(catalogue, customer_client):
    first = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="day")
    IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="day")
    assert again.status_code == 201
    assert again.json()["order_id"] != first.json()["order_id"]
    assert idempotent_requests_prune(now=timezone.now() + timedelta(hours=25)) == 1
    assert IdempotentRequest.objects.count() == 0


@pytest.mark.django_db
def test_cancel_with_a_key_answers_the_first_cancel_again(catalogue, customer_client):
    order_id = customer_client.post("/api/orders/", SEED_ORDER, format="json").json()["order_id"]
    first = customer_client.post(f"/api/orders/{order_id}/cancel/", HTTP_IDEMPOTENCY_KEY="c")
    again = customer_client.post(f"/api/orders/{order_id}/cancel/", HTTP_IDEMPOTENCY_KEY="c")
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert OutboxMessage.objects.filter(type="order.cancelled").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_one_order(catalogue, make_customer):
    # given: 8 threads, each with its own database connection, sending the same key and body at once
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is proven on PostgreSQL (SQLite serialises every write transaction)")
    _, client = make_customer("racer")
    auth = client._credentials["HTTP_AUTHORIZATION"]
    start = threading.Barrier(8)
    answers = []

    def send():
        other = APIClient()
        other.credentials(HTTP_AUTHORIZATION=auth)
        start.wait()
        try:
            answers.append(other.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="race"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(8)]
    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then: one order; every answer is its 201
    assert sorted(a.status_code for a in answers) == [201] * 8
    assert len({a.json()["order_id"] for a in answers}) == 1
    assert sum(a.get("Idempotent-Replayed") == "true" for a in answers) == 7
    assert Order.objects.count() == 1
    assert OutboxMessage.objects.filter(type="order.placed").count() == 1


@pytest.mark.django_db
def test_staff_see_the_kept_answers_read_only(catalogue, customer_client, admin_client):
    customer_client.post("/api/orders/", SEED_ORDER, format="json", HTTP_IDEMPOTENCY_KEY="seen-in-admin")
    record = IdempotentRequest.objects.get()
    assert "seen-in-admin" in admin_client.get("/admin/shop/idempotentrequest/").content.decode()
    page = admin_client.get(f"/admin/shop/idempotentrequest/{record.pk}/change/")
    assert page.status_code == 200
    assert b'name="key"' not in page.content  # read-only
    assert admin_client.get("/admin/shop/idempotentrequest/add/").status_code == 403

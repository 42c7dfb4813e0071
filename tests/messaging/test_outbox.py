import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from contracts.messages import CustomerNotified, OrderCancelled, OrderPaid, PaymentChargeDue, PaymentResult
from messaging.models import OutboxMessage
from messaging.outbox import outbox_buffered, outbox_emit, outbox_publish, outbox_write
from messaging.timers import timer_cancel, timer_set
from shop.models import Order
from shop.services import Contact, OrderItem, order_place

DATABASES = [alias for alias in ("default", "sqlite") if alias in settings.DATABASES]

pytestmark = pytest.mark.django_db


def place(customer):
    return order_place(
        customer=customer,
        contact=Contact(name="Jaan Tamm", email="jaan.tamm@example.com"),
        shipping_address={"street": "Narva mnt 5", "city": "Tallinn"},
        items=[OrderItem(product_id="PRD001", quantity=1), OrderItem(product_id="PRD003", quantity=2)],
        shipping_method="express",
        payment_method="credit_card",
    )


def test_order_and_its_order_placed_message_are_written_together(catalogue, make_customer):
    # given
    customer, _ = make_customer()
    # when
    order = place(customer)
    # then
    row = OutboxMessage.objects.get()
    assert (row.type, row.correlation_id, row.producer) == ("order.placed", str(order.id), "shop")
    assert row.published_at is None
    assert row.payload["order_id"] == str(order.id)
    assert row.payload["items"] == [
        {"product_id": "PRD001", "name": "Laptop", "quantity": 1},
        {"product_id": "PRD003", "name": "Mechanical keyboard", "quantity": 2},
    ]
    assert row.payload["total"] == "1539.97"


def test_a_rolled_back_order_leaves_no_message(catalogue, make_customer):
    # given
    customer, _ = make_customer()
    # when
    with pytest.raises(RuntimeError), transaction.atomic():  # noqa: PT012 - the raise rolls the transaction back
        place(customer)
        raise RuntimeError("the request failed after the order was written")
    # then
    assert Order.objects.count() == 0
    assert OutboxMessage.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_outbox_emit_refuses_to_run_outside_a_transaction():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox_emit(OrderPaid(order_id=uuid.uuid4()), queue="fulfilment_requests", correlation_id="x", producer="test")


def test_outbox_emit_refuses_an_unknown_queue():
    with pytest.raises(ValueError, match="unknown queue"), transaction.atomic():
        outbox_emit(OrderPaid(order_id=uuid.uuid4()), queue="nowhere", correlation_id="x", producer="test")


@pytest.mark.django_db(transaction=True)  # PostgreSQL detaches old partitions concurrently: no transaction
def test_pruning_lets_only_old_published_rows_and_old_processed_records_go():
    # given: old published, old unpublished (another day), fresh published outbox rows; old and fresh records
    from django.core.management import call_command
    from django.utils import timezone

    from messaging.history import history_partitions_ensure
    from messaging.models import ProcessedMessage

    long_ago = timezone.now() - timedelta(days=30)
    history_partitions_ensure(first=long_ago.date() - timedelta(days=1), last=long_ago.date() + timedelta(days=1))
    old_published = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="a", payload={},
                                                 published_at=long_ago)
    old_unpublished = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="b", payload={})
    fresh_published = OutboxMessage.objects.create(queue="new_orders", type="t", correlation_id="c", payload={},
                                                   published_at=timezone.now())
    OutboxMessage.objects.filter(pk=old_published.pk).update(created_at=long_ago)
    OutboxMessage.objects.filter(pk=old_unpublished.pk).update(created_at=long_ago + timedelta(days=1))
    old_record = ProcessedMessage.objects.create(consumer="x", message_id="1", message_created_at=long_ago)
    ProcessedMessage.objects.filter(pk=old_record.pk).update(processed_at=long_ago)
    ProcessedMessage.objects.create(consumer="x", message_id="2")
    # when
    call_command("prune_messages", "--older-than-days", "7")
    # then
    assert set(OutboxMessage.objects.values_list("pk", flat=True)) == {old_unpublished.pk, fresh_published.pk}
    assert list(ProcessedMessage.objects.values_list("message_id", flat=True)) == ["2"]
    assert not OutboxMessage.objects.filter(pk=old_published.pk).exists()


def notified_payload(order_id: str) -> dict:
    return {"order_id": order_id, "shipment_id": "SHP-0001", "status": "in_transit",
            "message": "Teel: päev ✓", "timestamp": "2026-11-27T18:46:59+00:00"}


@pytest.mark.django_db(databases=DATABASES)
@pytest.mark.parametrize("using", DATABASES)
def test_the_written_row_is_what_the_returned_object_says(using):
    # given
    order_id = str(uuid.uuid4())
    # when
    with transaction.atomic(using=using):
        returned = outbox_write(CustomerNotified.model_validate(notified_payload(order_id)), exchange="logistics",
                                routing_key="customer_notifications", correlation_id=order_id, producer="support",
                                using=using)
    # then: the payload as its contract writes it; due at once
    stored = OutboxMessage.objects.using(using).get()
    fields = ["id", "message_id", "exchange", "queue", "type", "correlation_id", "causation_id", "producer",
              "payload", "created_at", "published_at", "attempts", "last_error", "next_attempt_at", "due_at"]
    assert {f: getattr(stored, f) for f in fields} == {f: getattr(returned, f) for f in fields}
    assert (stored.exchange, stored.queue, stored.attempts, stored.published_at, stored.due_at) == (
        "logistics", "customer_notifications", 0, None, None)
    assert stored.payload == {**notified_payload(order_id), "timestamp": "2026-11-27T18:46:59Z",
                              "notification_id": None}
    assert abs(stored.next_attempt_at - stored.created_at) < timedelta(seconds=1)


def test_a_payload_that_is_not_a_contract_instance_is_refused_and_writes_nothing():
    with pytest.raises(TypeError, match="a message payload is a contract instance"), transaction.atomic():
        outbox_emit(notified_payload(str(uuid.uuid4())), queue="customer_notifications", correlation_id="x",
                    producer="test")
    assert OutboxMessage.objects.count() == 0


def test_an_event_is_written_with_the_type_of_its_contract():
    # given
    order_id = uuid.uuid4()
    # when
    with transaction.atomic():
        outbox_publish(OrderCancelled(order_id=order_id, message="changed my mind"), correlation_id=order_id,
                       producer="shop")
    # then: the type is the contract's, routed to the events exchange under it
    row = OutboxMessage.objects.get()
    assert (row.type, row.exchange, row.queue, row.correlation_id, row.payload) == (
        "order.cancelled", "logistics.events", "order.cancelled", str(order_id),
        {"order_id": str(order_id), "message": "changed my mind"})


@pytest.mark.parametrize("status", ["captured", "declined", "refunded"])
def test_a_contract_of_several_types_is_written_with_the_type_its_fields_say(status):
    # given
    order_id = uuid.uuid4()
    result = PaymentResult(order_id=order_id, payment_id=uuid.uuid4(), status=status, amount="10.00", currency="EUR")
    # when
    with transaction.atomic():
        outbox_emit(result, queue="payment_results", correlation_id=order_id, producer="payments")
    # then
    assert result.message_type() == f"payment.{status}"
    assert OutboxMessage.objects.get().type == f"payment.{status}"



def charge_due(order_id: str) -> PaymentChargeDue:
    return PaymentChargeDue(order_id=uuid.UUID(order_id), payment_id=uuid.uuid4())


def test_rows_kept_in_a_buffered_block_are_written_with_one_insert_in_the_order_written():
    # given
    order_ids = [str(uuid.uuid4()) for _ in range(3)]
    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as statements, outbox_buffered():
        for order_id in order_ids:
            outbox_emit(charge_due(order_id), queue="payment_requests", correlation_id=order_id, producer="payments")
        assert OutboxMessage.objects.count() == 0  # kept, not written yet
    # then
    inserts = [s["sql"] for s in statements.captured_queries if s["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    assert list(OutboxMessage.objects.order_by("id").values_list("correlation_id", flat=True)) == order_ids


def test_a_buffered_block_that_raises_writes_nothing():
    # when
    with pytest.raises(RuntimeError), transaction.atomic(), outbox_buffered():  # noqa: PT012 - the raise rolls the transaction back
        outbox_emit(charge_due(str(uuid.uuid4())), queue="payment_requests", correlation_id="o1",
                    producer="payments")
        raise RuntimeError("the handler failed")
    # then
    assert OutboxMessage.objects.count() == 0


def test_a_timer_set_and_cancelled_in_one_buffered_block_is_gone():
    # given
    order_id = str(uuid.uuid4())
    # when
    with transaction.atomic(), outbox_buffered():
        timer_set(charge_due(order_id), queue="payment_requests", correlation_id=order_id, producer="payments",
                  after=60)
        cancelled = timer_cancel(PaymentChargeDue, correlation_id=order_id)
    # then
    assert cancelled == 1
    assert OutboxMessage.objects.count() == 0

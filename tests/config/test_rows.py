"""config.rows: the same rows and instances as the ORM calls they stand for."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.rows import row_insert, row_lock, row_update, row_values, rows_lock_among, statement_cursor
from shop.models import Order, OrderStatusChange
from support.models import TrackingEntry, TrackingRecord
from transport.models import Shipment, Vehicle

pytestmark = pytest.mark.django_db

ORDER_FIELDS = [f.attname for f in Order._meta.concrete_fields]


def an_order(**fields) -> Order:
    values = {"contact_name": "Jaan Tamm", "contact_email": "jaan@example.com",
              "shipping_address": {"city": "Tallinn", "lines": ["Narva mnt 5", "Ülemiste"]},
              "shipping_method": "express", "payment_method": "credit_card", "total": Decimal("1539.97")}
    return Order(**{**values, **fields})


def as_dict(instance) -> dict:
    return {name: getattr(instance, name) for name in [f.attname for f in type(instance)._meta.concrete_fields]}


def test_an_inserted_row_is_the_row_the_orm_would_write(make_customer):
    # given
    customer, _ = make_customer()
    ours, theirs = an_order(customer=customer), an_order(customer=customer)
    # when
    row_insert(ours)
    theirs.save(force_insert=True)
    # then: same defaults, auto_now(_add) times set on the instance, and read back equal
    stored = Order.objects.get(pk=ours.pk)
    assert as_dict(stored) == as_dict(ours)
    differing = {k for k in ORDER_FIELDS if as_dict(stored)[k] != as_dict(Order.objects.get(pk=theirs.pk))[k]}
    assert differing == {"id", "created_at", "updated_at"}
    assert ours.created_at is not None and ours._state.adding is False


def test_a_generated_key_comes_back_and_a_conflict_can_be_skipped(make_customer):
    # given
    customer, _ = make_customer()
    order = row_insert(an_order(customer=customer))
    # when
    first = row_insert(OrderStatusChange(order=order, status="confirmed", note="ok"), ignore_conflicts=True)
    again = row_insert(OrderStatusChange(order=order, status="confirmed", note="again"), ignore_conflicts=True)
    # then
    assert isinstance(first.pk, int) and again.pk is None
    assert list(OrderStatusChange.objects.filter(order=order).values_list("note", flat=True)) == ["ok"]


def test_a_conflict_not_skipped_is_the_orm_s_integrity_error(make_customer):
    record = row_insert(TrackingRecord(shipment_id="SHP-1", order_id=uuid.uuid4(), status="picked_up"))
    row_insert(TrackingEntry(record=record, status="picked_up", message="m", timestamp=timezone.now()))
    with pytest.raises(DatabaseError), transaction.atomic():
        row_insert(TrackingEntry(record=record, status="picked_up", message="m", timestamp=timezone.now()))


def test_a_locked_row_is_the_instance_the_orm_would_load(make_customer):
    # given
    customer, _ = make_customer()
    order = row_insert(an_order(customer=customer, payment_due_at=timezone.now()))
    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = row_lock(Order, pk=str(order.pk))
    # then: every field converted as the ORM converts it (JSON, decimal, UUID, aware times)
    assert as_dict(locked) == as_dict(Order.objects.get(pk=order.pk))
    assert locked.shipping_address == {"city": "Tallinn", "lines": ["Narva mnt 5", "Ülemiste"]}
    assert locked._state.adding is False
    assert "FOR UPDATE" in queries.captured_queries[-1]["sql"]


def test_a_lock_by_another_field_finds_the_first_row_by_key_or_none():
    # given
    order_id = uuid.uuid4()
    vehicle = Vehicle.objects.create(code="VEH9", type="van", location="Tartu")
    Shipment.objects.create(id="SHP-B", order_id=order_id, recipient="A", shipping_address={}, shipping_method="x",
                            vehicle=vehicle)
    # when
    with transaction.atomic():
        found = row_lock(Shipment, order_id=order_id)
        missing = row_lock(Shipment, order_id=uuid.uuid4())
    # then
    assert (found.pk, found.vehicle_id, missing) == ("SHP-B", vehicle.pk, None)


def test_a_lock_in_another_order_takes_the_first_row_in_that_order():
    # given: three waiting shipments whose keys sort otherwise than their ages
    now = timezone.now()
    for key, age in (("SHP-A", 1), ("SHP-B", 3), ("SHP-C", 2)):
        Shipment.objects.create(id=key, order_id=uuid.uuid4(), recipient="A", shipping_address={},
                                shipping_method="x", status="awaiting_vehicle")
        Shipment.objects.filter(pk=key).update(created_at=now - timedelta(minutes=age))
    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        oldest = row_lock(Shipment, status="awaiting_vehicle", order_by=("created_at", "pk"))
        by_key = row_lock(Shipment, status="awaiting_vehicle")
    # then: the oldest, as the ORM's order_by("created_at", "pk").first() finds it
    assert (oldest.pk, by_key.pk) == ("SHP-B", "SHP-A")
    assert oldest.pk == Shipment.objects.filter(status="awaiting_vehicle").order_by("created_at", "pk").first().pk
    assert all("FOR UPDATE" in q["sql"] for q in queries.captured_queries)


def test_rows_locked_among_values_are_the_orm_s_rows_in_key_order():
    # given
    for code in ("VEH7", "VEH5", "VEH6"):
        Vehicle.objects.create(code=code, type="van", location="Tartu")
    # when: asked in another order, one of them twice, one that does not exist
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = rows_lock_among(Vehicle, "code", ["VEH6", "VEH7", "VEH6", "VEH0"])
    # then
    expected = list(Vehicle.objects.filter(code__in=["VEH6", "VEH7"]).order_by("pk"))
    assert [as_dict(v) for v in locked] == [as_dict(v) for v in expected]
    assert [v.code for v in locked] == ["VEH7", "VEH6"]
    assert "FOR UPDATE" in queries.captured_queries[-1]["sql"]


def test_a_value_the_field_cannot_hold_is_the_orm_s_validation_error():
    with pytest.raises(ValidationError), transaction.atomic():
        row_lock(Order, pk="not-a-uuid")


def test_an_update_writes_only_the_fields_named_and_touches_auto_now(make_customer):
    # given
    customer, _ = make_customer()
    order = row_insert(an_order(customer=customer))
    before = order.updated_at
    stale = Order.objects.get(pk=order.pk)
    # when: the instance changed in two fields, only one is named
    order.status, order.delivery_message = "confirmed", "not written"
    order.shipping_address = {"city": "Tartu"}
    row_update(order, ["status", "shipping_address", "updated_at"])
    # then
    stored = Order.objects.get(pk=order.pk)
    assert (stored.status, stored.shipping_address, stored.delivery_message) == ("confirmed", {"city": "Tartu"}, "")
    assert stored.updated_at == order.updated_at > before
    assert as_dict(stored) == {**as_dict(stale), "status": "confirmed", "shipping_address": {"city": "Tartu"},
                               "updated_at": order.updated_at}


def test_updating_a_row_that_is_gone_is_an_error(make_customer):
    customer, _ = make_customer()
    order = row_insert(an_order(customer=customer))
    Order.objects.filter(pk=order.pk).delete()
    with pytest.raises(DatabaseError, match="not updated"):
        row_update(order, ["status"])


def test_values_of_a_row_are_what_values_list_gives(make_customer):
    # given
    customer, _ = make_customer()
    order = row_insert(an_order(customer=customer))
    names = ("total", "shipping_address", "contact_email", "created_at")
    # when
    ours = row_values(Order, names, pk=order.pk)
    missing = row_values(Order, names, pk=uuid.uuid4())
    # then
    assert ours == Order.objects.filter(pk=order.pk).values_list(*names).first()
    assert ours[:2] == (Decimal("1539.97"), {"city": "Tallinn", "lines": ["Narva mnt 5", "Ülemiste"]})
    assert missing is None


@pytest.mark.django_db(transaction=True)
def test_the_kept_cursor_follows_its_connection_through_a_reconnect():
    # given: a statement on the kept cursor
    first = statement_cursor()
    first.execute("SELECT 1")
    # when: the connection is closed (a worker does so after a failure) and used again
    connection.close()
    second = statement_cursor()
    second.execute("SELECT 2")
    # then: a cursor of the new connection, which works; and it is kept from then on
    assert second is not first and second.fetchone() == (2,)
    assert statement_cursor() is second


def test_statements_are_seen_by_a_query_log_while_one_is_on(make_customer):
    customer, _ = make_customer()
    row_insert(an_order(customer=customer))  # a cursor is kept by now
    with CaptureQueriesContext(connection) as queries:
        row_values(Order, ("status",), pk=uuid.uuid4())
    assert len(queries.captured_queries) == 1

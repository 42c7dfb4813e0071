"""Shop writes: placing orders and following them to the door."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from config.errors import Conflict, DomainError, NotFound
from config.rows import row_insert, row_lock, row_update
from config.transactions import service_transaction
from messaging.outbox import outbox_emit, outbox_publish
from messaging.timers import timer_cancel, timer_set
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS, PAYMENT_REQUESTS, PAYMENT_RESULTS
from shop.models import (
    CANCELLABLE_STATUSES,
    FINAL_STATUSES,
    STATUS_RANK,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
)
from shop.selectors import order_get

PRODUCER = "shop"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrderItem:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""
    phone: str = ""


def customer_create(*, username: str, email: str = "", name: str = "") -> tuple[Customer, str]:
    """A customer account with its API token. Returns (customer, token key)."""
    User = get_user_model()
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise DomainError(f"a user named {username!r} already exists", field="username")
        user = User.objects.create_user(username=username, email=email)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        customer = Customer.objects.create(user=user, name=name or username, email=email)
        token = Token.objects.create(user=user)
    return customer, token.key


def customer_for_user(*, user) -> Customer:
    """The customer profile of an authenticated user; staff get one on first order."""
    try:
        return user.customer
    except Customer.DoesNotExist:
        return Customer.objects.get_or_create(
            user=user, defaults={"name": user.get_full_name() or user.username, "email": user.email}
        )[0]


def product_upsert(*, sku: str, name: str, price: Decimal, currency: str = "EUR") -> Product:
    product, _ = Product.objects.update_or_create(sku=sku, defaults={"name": name, "price": price, "currency": currency})
    return product


@service_transaction
def order_place(
    *,
    customer: Customer,
    contact: Contact,
    shipping_address: dict,
    items: Sequence[OrderItem],
    shipping_method: str,
    payment_method: str,
    order_id: UUID | None = None,
) -> Order:
    """Store the order with catalogue prices and announce it on ``new_orders``, in one transaction.

    ``order_id`` lets the API use its request id, so that one id follows the request, the
    order and every message it causes.
    """
    if not items:
        raise DomainError("an order needs at least one item", field="items")
    quantities: dict[str, int] = {}
    for item in items:  # the same product twice becomes one line
        quantities[item.product_id] = quantities.get(item.product_id, 0) + item.quantity
    products = {p.sku: p for p in Product.objects.filter(sku__in=quantities, active=True)}
    unknown = sorted(set(quantities) - set(products))
    if unknown:
        raise DomainError(f"unknown product(s): {', '.join(unknown)}", field="items")
    currencies = {p.currency for p in products.values()}
    if len(currencies) > 1:
        raise DomainError("all products of one order must share a currency", field="items")

    total = sum((products[sku].price * qty for sku, qty in quantities.items()), Decimal("0"))
    order = row_insert(Order(
        **({"id": order_id} if order_id else {}),
        customer=customer,
        contact_name=contact.name,
        contact_email=contact.email,
        contact_phone=contact.phone,
        shipping_address=shipping_address,
        shipping_method=shipping_method,
        payment_method=payment_method,
        total=total,
        currency=currencies.pop(),
    ))
    lines = OrderLine.objects.bulk_create(
        OrderLine(order=order, product=products[sku], sku=sku, name=products[sku].name,
                  quantity=qty, unit_price=products[sku].price)
        for sku, qty in quantities.items()
    )
    # The caller (the API's answer) reads the lines it just wrote without another query;
    # bulk_create returns them in id order, as a query would.
    order._prefetched_objects_cache = {"lines": lines}
    row_insert(OrderStatusChange(order=order, status=OrderStatus.NEW, note="order placed"))
    outbox_emit(
        queue=NEW_ORDERS,
        type="order.placed",
        correlation_id=order.id,
        producer=PRODUCER,
        payload={
            "order_id": str(order.id),
            "recipient": contact.name,
            "shipping_address": shipping_address,
            "shipping_method": shipping_method,
            "items": [{"product_id": line.sku, "name": line.name, "quantity": line.quantity} for line in lines],
            "total": str(order.total),
            "currency": order.currency,
            "placed_at": order.created_at.isoformat(),
        },
    )
    return order


def _order_lock(order_id: UUID | str) -> Order:
    try:
        order = row_lock(Order, pk=order_id)
    except (ValueError, ValidationError):
        order = None
    if order is None:
        raise NotFound(f"order {order_id} does not exist", field="order_id")
    return order


def _order_advance(order: Order, status: str, note: str) -> bool:
    """Move the order forward to ``status``. Caller holds the order's row lock.

    Returns False (and changes nothing) for a late or repeated update: status never moves
    back and never leaves a final state.
    """
    if order.status in FINAL_STATUSES or STATUS_RANK[status] <= STATUS_RANK[order.status]:
        return False
    order.status = status
    # One statement; the lock and the rank check already make a second row for a status impossible.
    row_insert(OrderStatusChange(order=order, status=status, note=note), ignore_conflicts=True)
    return True


@service_transaction
def order_confirmation_apply(*, order_id: UUID, confirmed: bool, message: str) -> Order:
    """The warehouse's answer. A confirmed order is being charged by payments (which heard the
    same event); the shop starts the clock on that payment."""
    order = _order_lock(order_id)
    status = OrderStatus.CONFIRMED if confirmed else OrderStatus.REJECTED
    order.warehouse_status = order.warehouse_status or status
    order.warehouse_message = order.warehouse_message or message
    fields = ["warehouse_status", "warehouse_message", "updated_at"]
    if _order_advance(order, status, message):
        fields.append("status")
        if confirmed:
            order.payment_requests = 1
            _payment_clock_start(order)
            fields += ["payment_requests", "payment_due_at"]
    row_update(order, fields)
    return order


def payment_timeout_seconds() -> float:
    scaled = settings.PAYMENT_TIMEOUT_SECONDS * settings.SIM_TIME_SCALE
    return max(scaled, settings.PAYMENT_TIMEOUT_FLOOR_SECONDS)


PAYMENT_DEADLINE_DUE = "payment.deadline_due"


def _payment_clock_start(order: Order) -> None:
    """Wait ``payment_timeout_seconds()`` for payments' answer to the latest request: a timer on
    the shop's own payment_results queue. Caller holds the order's lock and saves ``payment_due_at``."""
    timer = timer_set(queue=PAYMENT_RESULTS, type=PAYMENT_DEADLINE_DUE, correlation_id=order.id, producer=PRODUCER,
                      payload={"order_id": str(order.id), "request_number": order.payment_requests},
                      after=payment_timeout_seconds())
    order.payment_due_at = timer.due_at


def _payment_clock_stop(order: Order) -> None:
    """The payment was answered or the order ended: its deadline timer goes. Caller holds the lock."""
    order.payment_due_at = None
    timer_cancel(correlation_id=order.id, type=PAYMENT_DEADLINE_DUE)


@service_transaction
def order_payment_timeout(*, order_id: UUID | str, request_number: int) -> Order:
    """The payment deadline of request ``request_number`` is due with no answer from payments:
    ask again, or give up with compensation. A stale deadline (answered meanwhile, or a newer
    request owns the clock) changes nothing."""
    order = _order_lock(order_id)
    if order.status != OrderStatus.CONFIRMED or order.payment_requests != request_number:
        return order  # answered meanwhile, or a newer request owns the clock
    if order.payment_requests < settings.PAYMENT_MAX_REQUESTS:
        order.payment_requests += 1
        timer_cancel(correlation_id=order.id, type=PAYMENT_DEADLINE_DUE)  # none should be left; never two
        _payment_clock_start(order)
        row_update(order, ["payment_requests", "payment_due_at", "updated_at"])
        outbox_emit(queue=PAYMENT_REQUESTS, type="payment.requested", correlation_id=order.id, producer=PRODUCER,
                    payload={"order_id": str(order.id), "request_number": order.payment_requests})
        return order
    reason = f"no answer from payments after {order.payment_requests} requests"
    _order_fail_payment(order, reason)
    return order


def _order_fail_payment(order: Order, reason: str) -> None:
    """Compensate: the order fails, and everyone who acted on it undoes their part. Caller holds the lock."""
    _order_advance(order, OrderStatus.PAYMENT_FAILED, reason)
    order.payment_status = order.payment_status or "failed"
    order.payment_message = reason
    _payment_clock_stop(order)
    row_update(order, ["status", "payment_status", "payment_message", "payment_due_at", "updated_at"])
    outbox_publish(type="order.payment_failed", correlation_id=order.id, producer=PRODUCER,
                   payload={"order_id": str(order.id), "message": reason})


@service_transaction
def order_payment_result_apply(
    *, order_id: UUID, status: str, reference: str, reason: str
) -> Order:
    """Payments' answer: captured -> paid and handed to the warehouse for picking;
    declined -> payment_failed with compensation; refunded -> recorded. Repeats change nothing."""
    order = _order_lock(order_id)
    if status == "refunded":
        if order.payment_status != "refunded":
            order.payment_status = "refunded"
            order.payment_message = f"refunded ({reference})"
            row_update(order, ["payment_status", "payment_message", "updated_at"])
        return order
    if order.is_final or STATUS_RANK[order.status] >= STATUS_RANK[OrderStatus.PAID]:
        return order  # cancelled or failed meanwhile (payments refunds), or already paid
    if status == "captured":
        _order_advance(order, OrderStatus.PAID, f"payment captured ({reference})")
        order.payment_status = "captured"
        order.payment_reference = reference
        order.payment_message = "payment captured"
        _payment_clock_stop(order)
        row_update(order, ["status", "payment_status", "payment_reference", "payment_message",
                                  "payment_due_at", "updated_at"])
        outbox_emit(queue=FULFILMENT_REQUESTS, type="order.paid", correlation_id=order.id, producer=PRODUCER,
                    payload={"order_id": str(order.id)})
    elif status == "declined":
        order.payment_status = "declined"
        row_update(order, ["payment_status", "updated_at"])
        _order_fail_payment(order, f"payment declined: {reason}")
    return order


@service_transaction
def order_cancel(*, user, order_id: UUID | str) -> Order:
    """The customer cancels before picking starts: stock goes back, a payment is voided or refunded."""
    order_get(user=user, order_id=order_id)  # NotFound unless it is theirs (or staff)
    order = _order_lock(order_id)
    if order.status == OrderStatus.CANCELLED:
        return order
    if order.status not in CANCELLABLE_STATUSES:
        if order.is_final:
            raise Conflict(f"the order is already {order.status} and cannot be cancelled")
        raise Conflict(f"picking has started (order is {order.status}); the order can no longer be cancelled")
    _order_advance(order, OrderStatus.CANCELLED, "cancelled by the customer")
    _payment_clock_stop(order)
    row_update(order, ["status", "payment_due_at", "updated_at"])
    outbox_publish(type="order.cancelled", correlation_id=order.id, producer=PRODUCER,
                   payload={"order_id": str(order.id), "message": "cancelled by the customer"})
    return order


# Delivery statuses that also move the order itself.
DELIVERY_TO_ORDER_STATUS = {
    "picked_up": OrderStatus.PICKED_UP,
    "in_transit": OrderStatus.IN_TRANSIT,
    "out_for_delivery": OrderStatus.OUT_FOR_DELIVERY,
    "delivered": OrderStatus.DELIVERED,
}
DELIVERY_RANK = {"created": 0, "awaiting_vehicle": 1, "vehicle_assigned": 2, "picked_up": 3, "in_transit": 4,
                 "out_for_delivery": 5, "delivered": 6}


@service_transaction
def order_delivery_update_apply(
    *, order_id: UUID, shipment_id: str, status: str, message: str, timestamp: datetime
) -> Order:
    """Record what the customer was told about the delivery; a stale update changes nothing."""
    order = _order_lock(order_id)
    fields = ["updated_at"]
    if not order.shipment_id:
        order.shipment_id = shipment_id
        fields.append("shipment_id")
    if DELIVERY_RANK.get(status, -1) > DELIVERY_RANK.get(order.delivery_status, -1):
        order.delivery_status = status
        order.delivery_message = message
        order.delivery_updated_at = timestamp
        fields += ["delivery_status", "delivery_message", "delivery_updated_at"]
    target = DELIVERY_TO_ORDER_STATUS.get(status)
    if target is not None and _order_advance(order, target, message):
        fields.append("status")
    row_update(order, fields)
    return order

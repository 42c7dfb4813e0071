"""Shop writes: placing orders and following them to the door."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework.authtoken.models import Token

from config.errors import DomainError, NotFound
from messaging.outbox import outbox_emit
from messaging.topology import NEW_ORDERS
from shop.models import (
    FINAL_STATUSES,
    STATUS_RANK,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
)

PRODUCER = "shop"


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


@transaction.atomic
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
    order = Order.objects.create(
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
    )
    lines = OrderLine.objects.bulk_create(
        OrderLine(order=order, product=products[sku], sku=sku, name=products[sku].name,
                  quantity=qty, unit_price=products[sku].price)
        for sku, qty in quantities.items()
    )
    OrderStatusChange.objects.create(order=order, status=OrderStatus.NEW, note="order placed")
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
        return Order.objects.select_for_update().get(pk=order_id)
    except (Order.DoesNotExist, ValueError, ValidationError):
        raise NotFound(f"order {order_id} does not exist", field="order_id") from None


def _order_advance(order: Order, status: str, note: str) -> bool:
    """Move the order forward to ``status``. Caller holds the order's row lock.

    Returns False (and changes nothing) for a late or repeated update: status never moves
    back and never leaves a final state.
    """
    if order.status in FINAL_STATUSES or STATUS_RANK[status] <= STATUS_RANK[order.status]:
        return False
    order.status = status
    OrderStatusChange.objects.get_or_create(order=order, status=status, defaults={"note": note})
    return True


@transaction.atomic
def order_confirmation_apply(*, order_id: UUID, confirmed: bool, message: str) -> Order:
    order = _order_lock(order_id)
    status = OrderStatus.CONFIRMED if confirmed else OrderStatus.REJECTED
    if _order_advance(order, status, message):
        order.warehouse_status = status
        order.warehouse_message = message
        order.save(update_fields=["status", "warehouse_status", "warehouse_message", "updated_at"])
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


@transaction.atomic
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
    order.save(update_fields=fields)
    return order

"""Shop writes: placing orders and following them to the door.

The shop coordinates the order saga: it hears the warehouse's answer, asks payments to charge
the order (and asks again when no answer comes in time), hands a paid order to the warehouse,
and follows the delivery through what customer service told the customer. An order's status
only moves forward (``shop.models.STATUS_RANK``): a late or repeated message changes nothing.

Each service owns its transaction (``transaction.atomic``). The ones only a message handler
calls join the handler's transaction without a savepoint of their own (``savepoint=False``):
the handler never carries on after an error. Placing and cancelling keep their savepoint: the
admin's cancel action carries on with the next order after one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import translation

from accounts.services import account_create, api_token_issue
from config.errors import Conflict, DomainError, Forbidden
from contracts.messages import (
    OrderCancelled,
    OrderedLine,
    OrderPaid,
    OrderPaymentFailed,
    OrderPlaced,
    PaymentDeadlineDue,
    PaymentRequested,
)
from contracts.methods import PAYMENT_METHODS, SHIPPING_METHODS
from contracts.stages import ShipmentStage, stage_rank
from messaging.outbox import outbox_emit, outbox_publish
from messaging.timers import timer_cancel, timer_set
from messaging.topology import FULFILMENT_REQUESTS, PAYMENT_REQUESTS, PAYMENT_RESULTS
from shop.locks import order_for_update, orders_for_update
from shop.models import (
    CANCELLABLE_STATUSES,
    STATUS_RANK,
    Customer,
    Order,
    OrderLine,
    OrderStatus,
    OrderStatusChange,
    Product,
)
from shop.selectors import CANCEL_ORDERS_PERMISSION, order_get

PRODUCER = "shop"
PAYMENT_DEADLINE_DUE = PaymentDeadlineDue.TYPE
MESSAGE_MAX_LENGTH = 2000  # the longest message text a contract carries


@dataclass(frozen=True)
class OrderItem:
    product_id: str
    quantity: int


@dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""
    phone: str = ""


@transaction.atomic
def customer_create(*, username: str, email: str = "", name: str = "", password: str | None = None,
                    ) -> tuple[Customer, str]:
    """A customer account with its API token. Returns (customer, token key).

    With a ``password`` (checked by AUTH_PASSWORD_VALIDATORS) the customer can also sign in:
    get the token with ``accounts.services.token_obtain`` and log in to the browsable API.
    """
    user = account_create(username=username, email=email, password=password)
    customer = Customer.objects.create(user=user, name=name or user.username, email=email)
    return customer, api_token_issue(user=user)


def customer_for_user(*, user: User) -> Customer:
    """The customer profile of an authenticated user; staff get one on first order."""
    try:
        return user.customer
    except Customer.DoesNotExist:
        return Customer.objects.get_or_create(
            user=user, defaults={"name": user.get_full_name() or user.username, "email": user.email}
        )[0]


def product_upsert(*, sku: str, name: str, price: Decimal, currency: str = "EUR") -> Product:
    product, _ = Product.objects.update_or_create(
        sku=sku, defaults={"name": name, "price": price, "currency": currency})
    return product


# The largest total the order (and the payment, and every message with an amount) can hold.
_TOTAL = Order._meta.get_field("total")
ORDER_TOTAL_MAX = Decimal(10) ** (_TOTAL.max_digits - _TOTAL.decimal_places) - Decimal(10) ** -_TOTAL.decimal_places


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
    """Store the order with catalogue prices and publish ``order.placed``, in one transaction.

    ``order_id`` lets the API use its request id, so that one id follows the request, the
    order and every message it causes.
    """
    _order_methods_check(items=items, shipping_method=shipping_method, payment_method=payment_method)
    quantities = _quantities_of(items)
    products = _products_priced(quantities)
    currency = next(iter({p.currency for p in products.values()}))
    total = _order_total(quantities, products, currency)
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
        currency=currency,
    )
    lines = OrderLine.objects.bulk_create(
        OrderLine(order=order, product=products[sku], sku=sku, name=products[sku].name,
                  quantity=qty, unit_price=products[sku].price)
        for sku, qty in quantities.items()
    )
    OrderStatusChange.objects.create(order=order, status=OrderStatus.NEW, note="order placed")
    _order_placed_announce(order, customer=customer, contact=contact, lines=lines)
    return order


def _order_methods_check(*, items: Sequence[OrderItem], shipping_method: str, payment_method: str) -> None:
    """DomainError for an order without items, or with a shipping or payment method not offered."""
    if not items:
        raise DomainError("an order needs at least one item", field="items")
    if shipping_method not in SHIPPING_METHODS:
        raise DomainError(f"not one of {', '.join(SHIPPING_METHODS)}", field="shipping_method")
    if payment_method not in PAYMENT_METHODS:
        raise DomainError(f"not one of {', '.join(PAYMENT_METHODS)}", field="payment_method")


def _quantities_of(items: Sequence[OrderItem]) -> dict[str, int]:
    """The quantity of each product: the same product twice becomes one line."""
    quantities: dict[str, int] = {}
    for item in items:
        quantities[item.product_id] = quantities.get(item.product_id, 0) + item.quantity
    return quantities


def _products_priced(quantities: dict[str, int]) -> dict[str, Product]:
    """The active catalogue products ordered, by sku; DomainError for an unknown one or for
    products of different currencies."""
    products = {p.sku: p for p in Product.objects.filter(sku__in=quantities, active=True)}
    unknown = sorted(set(quantities) - set(products))
    if unknown:
        raise DomainError(f"unknown product(s): {', '.join(unknown)}", field="items")
    if len({p.currency for p in products.values()}) > 1:
        raise DomainError("all products of one order must share a currency", field="items")
    return products


def _order_total(quantities: dict[str, int], products: dict[str, Product], currency: str) -> Decimal:
    """The sum of quantity x catalogue price; DomainError above what one order may hold."""
    total = sum((products[sku].price * qty for sku, qty in quantities.items()), Decimal("0"))
    if total > ORDER_TOTAL_MAX:
        raise DomainError(f"the order's total ({total} {currency}) is more than one order may hold "
                          f"({ORDER_TOTAL_MAX})", field="items")
    return total


def _order_placed_announce(order: Order, *, customer: Customer, contact: Contact, lines: list[OrderLine]) -> None:
    """Publish ``order.placed`` in the order's transaction."""
    shipping_address, shipping_method = order.shipping_address, order.shipping_method
    outbox_publish(
        OrderPlaced(
            order_id=order.id,
            recipient=contact.name,
            contact_email=contact.email,
            # mails go to the account's own address, never to one typed into the order
            account_email=customer.user.email,
            language=translation.get_language() or "",  # the request's (LocaleMiddleware), else the default
            shipping_address=shipping_address,
            shipping_method=shipping_method,
            items=[OrderedLine(product_id=line.sku, name=line.name, quantity=line.quantity) for line in lines],
            total=order.total,
            currency=order.currency,
            placed_at=order.created_at,
        ),
        correlation_id=order.id,
        producer=PRODUCER,
    )


def _order_advance(order: Order, status: OrderStatus, note: str) -> bool:
    """Move the order forward to ``status`` and record it in its history. Caller holds the
    order's lock and saves ``status``.

    Returns False (and changes nothing) for a late or repeated update: status never moves
    back (to a lower or equal rank) and never leaves a final state.
    """
    if order.is_final or STATUS_RANK[status] <= STATUS_RANK[order.status]:
        return False
    order.status = status
    OrderStatusChange.objects.create(order=order, status=status, note=note)
    return True


@transaction.atomic(savepoint=False)
def order_confirmation_apply(*, order_id: UUID, confirmed: bool, message: str) -> Order:
    """The warehouse's answer. A confirmed order is to be paid: the shop asks payments to charge
    it and starts the clock on the answer. A late or repeated answer changes nothing."""
    order = order_for_update(order_id)
    status = OrderStatus.CONFIRMED if confirmed else OrderStatus.REJECTED
    order.warehouse_status = order.warehouse_status or status
    order.warehouse_message = order.warehouse_message or message
    fields = ["warehouse_status", "warehouse_message", "updated_at"]
    if _order_advance(order, status, message):
        fields.append("status")
        if confirmed:
            _payment_request(order)
            fields += ["payment_requests", "payment_due_at"]
    order.save(update_fields=fields)
    return order


def payment_timeout_seconds() -> float:
    """How long the shop waits for payments' answer: real time, never scaled (SIM_TIME_SCALE
    scales only the simulated world's delays)."""
    return settings.PAYMENT_TIMEOUT_SECONDS


def _payment_request(order: Order) -> None:
    """Ask payments to charge the order (the next request number, the order's total) and wait
    ``payment_timeout_seconds()`` for the answer: a timer on the shop's own payment_results
    queue. Caller holds the order's lock and saves ``payment_requests`` and ``payment_due_at``."""
    order.payment_requests += 1
    outbox_emit(
        PaymentRequested(order_id=order.id, request_number=order.payment_requests, amount=order.total,
                         currency=order.currency, method=order.payment_method),
        queue=PAYMENT_REQUESTS, correlation_id=order.id, producer=PRODUCER,
    )
    timer = timer_set(
        PaymentDeadlineDue(order_id=order.id, request_number=order.payment_requests),
        queue=PAYMENT_RESULTS, correlation_id=order.id, producer=PRODUCER, after=payment_timeout_seconds(),
    )
    order.payment_due_at = timer.due_at


def _payment_clock_stop(order: Order) -> None:
    """The payment was answered or the order ended: its deadline timer goes. Caller holds the
    order's lock and saves ``payment_due_at``."""
    order.payment_due_at = None
    timer_cancel(PaymentDeadlineDue, correlation_id=order.id)


@transaction.atomic(savepoint=False)
def order_payment_timeout(*, order_id: UUID | str, request_number: int) -> Order:
    """The payment deadline of request ``request_number`` is due with no answer from payments:
    ask again (the same amount), or give up with compensation. A stale deadline (answered
    meanwhile, or a newer request owns the clock) changes nothing."""
    order = order_for_update(order_id)
    if order.status != OrderStatus.CONFIRMED or order.payment_requests != request_number:
        return order
    if order.payment_requests < settings.PAYMENT_MAX_REQUESTS:
        timer_cancel(PaymentDeadlineDue, correlation_id=order.id)  # none should be left; never two
        _payment_request(order)
        order.save(update_fields=["payment_requests", "payment_due_at", "updated_at"])
        return order
    _order_fail_payment(order, f"no answer from payments after {order.payment_requests} requests")
    return order


def _order_fail_payment(order: Order, reason: str) -> None:
    """Compensate: the order fails, and everyone who acted on it undoes their part. Caller holds
    the order's lock; the order is saved here."""
    reason = reason[:MESSAGE_MAX_LENGTH]
    _order_advance(order, OrderStatus.PAYMENT_FAILED, reason)
    order.payment_status = order.payment_status or "failed"
    order.payment_message = reason
    _payment_clock_stop(order)
    order.save(update_fields=["status", "payment_status", "payment_message", "payment_due_at", "updated_at"])
    outbox_publish(OrderPaymentFailed(order_id=order.id, message=reason), correlation_id=order.id, producer=PRODUCER)


@transaction.atomic(savepoint=False)
def order_payment_result_apply(
    *, order_id: UUID, status: Literal["captured", "declined", "refunded"], reference: str, reason: str
) -> Order:
    """Payments' answer: captured -> paid and handed to the warehouse for picking;
    declined -> payment_failed with compensation; refunded -> recorded. Repeats change nothing."""
    order = order_for_update(order_id)
    if status == "refunded":
        if order.payment_status != "refunded":
            order.payment_status = "refunded"
            order.payment_message = f"refunded ({reference})"
            order.save(update_fields=["payment_status", "payment_message", "updated_at"])
        return order
    if order.is_final or STATUS_RANK[order.status] >= STATUS_RANK[OrderStatus.PAID]:
        return order  # cancelled or failed meanwhile (payments refunds), or already paid
    if status == "captured":
        _order_advance(order, OrderStatus.PAID, f"payment captured ({reference})")
        order.payment_status = "captured"
        order.payment_reference = reference
        order.payment_message = "payment captured"
        _payment_clock_stop(order)
        order.save(update_fields=["status", "payment_status", "payment_reference", "payment_message",
                                  "payment_due_at", "updated_at"])
        outbox_emit(OrderPaid(order_id=order.id), queue=FULFILMENT_REQUESTS, correlation_id=order.id,
                    producer=PRODUCER)
    elif status == "declined":
        order.payment_status = "declined"
        _order_fail_payment(order, f"payment declined: {reason}")
    return order


@transaction.atomic
def order_cancel(*, user: User, order_id: UUID | str) -> Order:
    """The customer, or staff for the customer, cancels before picking starts: stock goes back,
    a payment is voided or refunded. NotFound unless the user may see the order (their own, or
    any with ``shop.view_order``); Forbidden for another's order without ``shop.cancel_order``;
    Conflict once picking has started or the order ended otherwise. Cancelling twice changes
    nothing. Staff cancelling a customer's order is recorded with their username."""
    seen = order_get(user=user, order_id=order_id)
    own = seen.customer.user_id == user.pk
    if not own and not user.has_perm(CANCEL_ORDERS_PERMISSION):
        raise Forbidden(f"cancelling another customer's order needs the permission {CANCEL_ORDERS_PERMISSION}")
    order = order_for_update(order_id)
    if order.status == OrderStatus.CANCELLED:
        return order
    if order.status not in CANCELLABLE_STATUSES:
        if order.is_final:
            raise Conflict(f"the order is already {order.status} and cannot be cancelled")
        raise Conflict(f"picking has started (order is {order.status}); the order can no longer be cancelled")
    # the history names the staff member; the message (which reaches the customer) does not
    message = "cancelled by the customer" if own else "cancelled by customer service"
    note = message if own else f"cancelled for the customer by staff member {user.get_username()}"
    _order_advance(order, OrderStatus.CANCELLED, note)
    _payment_clock_stop(order)
    order.save(update_fields=["status", "payment_due_at", "updated_at"])
    outbox_publish(OrderCancelled(order_id=order.id, message=message), correlation_id=order.id, producer=PRODUCER)
    return order


# The shipment stages that also move the order itself.
STAGE_TO_ORDER_STATUS: dict[ShipmentStage, OrderStatus] = {
    ShipmentStage.PICKED_UP: OrderStatus.PICKED_UP,
    ShipmentStage.IN_TRANSIT: OrderStatus.IN_TRANSIT,
    ShipmentStage.OUT_FOR_DELIVERY: OrderStatus.OUT_FOR_DELIVERY,
    ShipmentStage.DELIVERED: OrderStatus.DELIVERED,
}


@transaction.atomic(savepoint=False)
def orders_lock(*, order_ids: Iterable[UUID]) -> dict[UUID, Order]:
    """Lock the orders a worker's batch will change, in one statement in primary-key order, and
    return them by id (an unknown id is left out). Caller holds the transaction."""
    return {order.id: order for order in orders_for_update(set(order_ids))}


@transaction.atomic(savepoint=False)
def order_delivery_update_apply(
    *, order_id: UUID, shipment_id: str, status: ShipmentStage, message: str, timestamp: datetime,
    locked: Order | None = None,
) -> Order:
    """Record what the customer was told about the delivery; a late or repeated update changes nothing.

    ``locked``: the order, when the caller holds its lock already (``orders_lock``)."""
    stage = ShipmentStage(status)
    order = locked if locked is not None else order_for_update(order_id)
    fields = ["updated_at"]
    if not order.shipment_id:
        order.shipment_id = shipment_id
        fields.append("shipment_id")
    if stage_rank(stage) > stage_rank(order.delivery_status):
        order.delivery_status = stage.value
        order.delivery_message = message
        order.delivery_updated_at = timestamp
        fields += ["delivery_status", "delivery_message", "delivery_updated_at"]
    target = STAGE_TO_ORDER_STATUS.get(stage)
    if target is not None and _order_advance(order, target, message):
        fields.append("status")
    order.save(update_fields=fields)
    return order

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

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast
from uuid import UUID

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model, user_logged_in
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone, translation

from config.accounts import account_username_check, api_token_issue
from config.errors import Conflict, DomainError, Forbidden, TooManyAttempts, Unprocessable
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
from shop.locks import order_for_update
from shop.models import (
    CANCELLABLE_STATUSES,
    STATUS_RANK,
    Customer,
    IdempotentRequest,
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
    get the token with ``customer_token_obtain`` and log in to the browsable API.
    """
    User = get_user_model()
    username = account_username_check(username)
    user = User(username=username, email=User.objects.normalize_email(email))
    if password is None:
        user.set_unusable_password()
    else:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise DomainError(" ".join(exc.messages), field="password") from None
        user.set_password(password)
    user.save()
    customer = Customer.objects.create(user=user, name=name or username, email=email)
    return customer, api_token_issue(user=user)


LOGIN_LOCKED = "too many failed logins; try again later"


def customer_token_obtain(*, request: HttpRequest, username: str, password: str) -> str:
    """A new API token for the account with this username and password, shown this once (its
    earlier token stops working). Customers and drivers only: staff are refused (Forbidden)
    and use the admin and the session.

    The login goes through django-axes (settings "sign-in"): a locked-out account or client
    address is refused with TooManyAttempts before the password is even checked, and every
    failure counts towards a lock-out.
    """
    credentials = {"username": username}
    if AxesProxyHandler.is_locked(request, credentials):
        raise TooManyAttempts(LOGIN_LOCKED, retry_after=int(settings.AXES_COOLOFF_TIME.total_seconds()))
    user = authenticate(request, username=username, password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):  # this failure reached the limit
            raise TooManyAttempts(LOGIN_LOCKED, retry_after=int(settings.AXES_COOLOFF_TIME.total_seconds()))
        raise DomainError("unable to log in with these credentials", field="non_field_errors")
    # a login like the forms' (no session): django-axes clears this account's failures, and
    # last_login is set
    user_logged_in.send(sender=user.__class__, request=request, user=user)
    return api_token_issue(user=user)


def customer_token_rotate(*, user: User) -> str:
    """Replace the user's API token with a new one: the old key stops working at once."""
    return api_token_issue(user=user)


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
    if not items:
        raise DomainError("an order needs at least one item", field="items")
    if shipping_method not in SHIPPING_METHODS:
        raise DomainError(f"not one of {', '.join(SHIPPING_METHODS)}", field="shipping_method")
    if payment_method not in PAYMENT_METHODS:
        raise DomainError(f"not one of {', '.join(PAYMENT_METHODS)}", field="payment_method")
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
    if total > ORDER_TOTAL_MAX:
        raise DomainError(f"the order's total ({total} {next(iter(currencies))}) is more than one order may hold "
                          f"({ORDER_TOTAL_MAX})", field="items")
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
    outbox_publish(
        type=OrderPlaced.TYPE,
        correlation_id=order.id,
        producer=PRODUCER,
        payload=OrderPlaced(
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
    )
    return order


IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Answer:
    """What a request answered: kept for an ``Idempotency-Key`` and given again."""

    status: int
    body: Any
    replayed: bool = False


def request_fingerprint(*, operation: str, body: Any) -> str:
    """The same operation with the same JSON body (whatever its keys' order) -> the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    return hashlib.sha256(f"{operation}\n{canonical}".encode()).hexdigest()


@transaction.atomic
def request_once(*, user: User, key: str | None, fingerprint: str, perform: Callable[[], Answer]) -> Answer:
    """``perform()`` once per user and ``key`` in 24 hours; the first answer again after that.

    The key's row is inserted before the work, in its transaction: a duplicate arriving
    meanwhile waits on the unique (user, key) until that transaction ends, then answers what
    it committed. Work that fails rolls back with its row, so a retry does it again. The same
    key with another fingerprint is Unprocessable (422). Without a key, just ``perform()``.
    """
    if key is None:
        return perform()
    now = timezone.now()
    IdempotentRequest.objects.filter(user=user, key=key, created_at__lt=now - IDEMPOTENCY_WINDOW).delete()
    try:
        with transaction.atomic():
            record = IdempotentRequest.objects.create(user=user, key=key, fingerprint=fingerprint, created_at=now)
    except IntegrityError:
        first = IdempotentRequest.objects.filter(user=user, key=key).first()
        if first is None:  # expired and deleted by a concurrent duplicate a moment ago
            raise Conflict("a request with this Idempotency-Key is in progress; retry",
                           field="Idempotency-Key") from None
        if first.fingerprint != fingerprint:
            raise Unprocessable("this key was used for another request (another body or endpoint) in the last "
                                "24 hours; use a new key", field="Idempotency-Key") from None
        return Answer(cast(int, first.response_status), first.response_body, replayed=True)  # committed with it
    answer = perform()
    body = json.loads(json.dumps(answer.body, cls=DjangoJSONEncoder))  # as a replay will read it
    record.response_status, record.response_body = answer.status, body
    record.save(update_fields=["response_status", "response_body"])
    return Answer(answer.status, body)


def idempotent_requests_prune(*, now: datetime | None = None) -> int:
    """Forget the keys older than the 24-hour window; returns how many."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_WINDOW
    return IdempotentRequest.objects.filter(created_at__lt=cutoff).delete()[0]


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
    scaled = settings.PAYMENT_TIMEOUT_SECONDS * settings.SIM_TIME_SCALE
    return max(scaled, settings.PAYMENT_TIMEOUT_FLOOR_SECONDS)


def _payment_request(order: Order) -> None:
    """Ask payments to charge the order (the next request number, the order's total) and wait
    ``payment_timeout_seconds()`` for the answer: a timer on the shop's own payment_results
    queue. Caller holds the order's lock and saves ``payment_requests`` and ``payment_due_at``."""
    order.payment_requests += 1
    outbox_emit(
        queue=PAYMENT_REQUESTS, type=PaymentRequested.TYPE, correlation_id=order.id, producer=PRODUCER,
        payload=PaymentRequested(order_id=order.id, request_number=order.payment_requests, amount=order.total,
                                 currency=order.currency, method=order.payment_method),
    )
    timer = timer_set(
        queue=PAYMENT_RESULTS, type=PAYMENT_DEADLINE_DUE, correlation_id=order.id, producer=PRODUCER,
        payload=PaymentDeadlineDue(order_id=order.id, request_number=order.payment_requests),
        after=payment_timeout_seconds(),
    )
    order.payment_due_at = timer.due_at


def _payment_clock_stop(order: Order) -> None:
    """The payment was answered or the order ended: its deadline timer goes. Caller holds the
    order's lock and saves ``payment_due_at``."""
    order.payment_due_at = None
    timer_cancel(correlation_id=order.id, type=PAYMENT_DEADLINE_DUE)


@transaction.atomic(savepoint=False)
def order_payment_timeout(*, order_id: UUID | str, request_number: int) -> Order:
    """The payment deadline of request ``request_number`` is due with no answer from payments:
    ask again (the same amount), or give up with compensation. A stale deadline (answered
    meanwhile, or a newer request owns the clock) changes nothing."""
    order = order_for_update(order_id)
    if order.status != OrderStatus.CONFIRMED or order.payment_requests != request_number:
        return order
    if order.payment_requests < settings.PAYMENT_MAX_REQUESTS:
        timer_cancel(correlation_id=order.id, type=PAYMENT_DEADLINE_DUE)  # none should be left; never two
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
    outbox_publish(type=OrderPaymentFailed.TYPE, correlation_id=order.id, producer=PRODUCER,
                   payload=OrderPaymentFailed(order_id=order.id, message=reason))


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
        outbox_emit(queue=FULFILMENT_REQUESTS, type=OrderPaid.TYPE, correlation_id=order.id, producer=PRODUCER,
                    payload=OrderPaid(order_id=order.id))
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
    outbox_publish(type=OrderCancelled.TYPE, correlation_id=order.id, producer=PRODUCER,
                   payload=OrderCancelled(order_id=order.id, message=message))
    return order


# The shipment stages that also move the order itself.
STAGE_TO_ORDER_STATUS: dict[ShipmentStage, OrderStatus] = {
    ShipmentStage.PICKED_UP: OrderStatus.PICKED_UP,
    ShipmentStage.IN_TRANSIT: OrderStatus.IN_TRANSIT,
    ShipmentStage.OUT_FOR_DELIVERY: OrderStatus.OUT_FOR_DELIVERY,
    ShipmentStage.DELIVERED: OrderStatus.DELIVERED,
}


@transaction.atomic(savepoint=False)
def order_delivery_update_apply(
    *, order_id: UUID, shipment_id: str, status: ShipmentStage, message: str, timestamp: datetime
) -> Order:
    """Record what the customer was told about the delivery; a late or repeated update changes nothing."""
    stage = ShipmentStage(status)
    order = order_for_update(order_id)
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

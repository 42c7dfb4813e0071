"""The demo's scenario: its accounts, the seed's orders placed through the HTTP API and followed
until final, the compensations of those that end without delivery, and whether the story held.

The story: the seed's order is delivered, the order asking for more than the stock is rejected,
the declined card's order and the cancelled order end so and give their stock back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import requests
from django.contrib.auth import get_user_model

from accounts.services import api_token_issue
from payments.selectors import payment_for_order
from shop.services import customer_create
from simulation.demo_data import CANCELLED_ORDER, DECLINED_ORDER, DEMO_ORDERS, PRODUCTS, SEED_ORDER
from warehouse.selectors import reservation_get

CUSTOMER_USERNAME = "demo-customer"
ADMIN_USERNAME = "admin"
FINAL_STATUSES = frozenset({"delivered", "rejected", "payment_failed", "cancelled"})
UNDONE_STATUSES = frozenset({"payment_failed", "cancelled"})  # final, and something to give back
COMPENSATION_SECONDS = 20.0


class ScenarioError(Exception):
    """The API refused or failed a step of the scenario."""


# --- accounts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Accounts:
    customer_token: str
    customer_created: bool
    admin_password: str | None  # None: the admin existed, its password is unchanged
    customer_username: str = CUSTOMER_USERNAME
    admin_username: str = ADMIN_USERNAME


def accounts_ensure() -> Accounts:
    """The demo customer (created on first use) and its API token; a superuser with a random
    password when there is none."""
    User = get_user_model()
    user = User.objects.filter(username=CUSTOMER_USERNAME).first()
    if user is None:
        _customer, token = customer_create(username=CUSTOMER_USERNAME, email=f"{CUSTOMER_USERNAME}@example.com",
                                           name="Demo customer")
    else:
        token = api_token_issue(user=user)  # tokens are shown once: a new one for this run
    password = None
    if not User.objects.filter(username=ADMIN_USERNAME).exists():
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=ADMIN_USERNAME, email=f"{ADMIN_USERNAME}@example.com",
                                      password=password)
    return Accounts(customer_token=token, customer_created=user is None, admin_password=password)


# --- orders -----------------------------------------------------------------------------
@dataclass
class ScenarioOrder:
    """One order of the scenario as the API last showed it."""

    order_id: str
    customer: str
    items: str
    total: str
    currency: str
    placed_at: float  # time.monotonic()
    expected: str  # how the scenario means it to end
    is_seed: bool = False
    over_stock: bool = False  # asks for more of a product than the seed stocks
    status: str = "new"
    warehouse_message: str = ""
    delivery_status: str = ""
    delivery_message: str = ""
    payment_message: str = ""
    shipment_id: str = ""
    compensation: str = ""
    final_seconds: float | None = None  # created to final status, by the server's clock

    @property
    def short_id(self) -> str:
        return self.order_id[:8]

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def elapsed(self, now: float) -> float:
        return self.final_seconds if self.final_seconds is not None else now - self.placed_at

    def describe(self) -> str:
        if self.status == "rejected":
            return self.warehouse_message
        if self.status in UNDONE_STATUSES:
            return self.payment_message or self.status
        if self.delivery_status:
            return f"{self.delivery_status}: {self.delivery_message}"
        return self.warehouse_message

    def apply(self, data: dict) -> None:
        """Take the order's representation from the API."""
        self.status = data["status"]
        self.warehouse_message = (data.get("warehouse_confirmation") or {}).get("message") or ""
        delivery = data.get("delivery_status") or {}
        self.delivery_status = delivery.get("status") or ""
        self.delivery_message = delivery.get("message") or ""
        self.payment_message = (data.get("payment") or {}).get("message") or ""
        self.shipment_id = data.get("shipment_id") or ""
        if self.is_final and self.final_seconds is None:
            self.final_seconds = _seconds_to_final(data) or (time.monotonic() - self.placed_at)


def _seconds_to_final(data: dict) -> float | None:
    final = [change for change in data.get("history") or [] if change.get("status") in FINAL_STATUSES]
    try:
        return (datetime.fromisoformat(final[-1]["at"]) - datetime.fromisoformat(data["created_at"])).total_seconds()
    except (IndexError, KeyError, TypeError, ValueError):
        return None


def order_over_stock(body: dict) -> bool:
    """Whether the order asks for more of some product than the seed stocks (so it must be rejected)."""
    seed_stock = {sku: stock for sku, _name, _price, _location, stock in PRODUCTS}
    wanted: dict[str, int] = {}
    for item in body["items"]:
        wanted[item["product_id"]] = wanted.get(item["product_id"], 0) + int(item["quantity"])
    return any(quantity > seed_stock.get(sku, 0) for sku, quantity in wanted.items())


def order_expected(body: dict) -> str:
    if order_over_stock(body):
        return "rejected"
    if body is DECLINED_ORDER:
        return "payment_failed"
    if body is CANCELLED_ORDER:
        return "cancelled"
    return "delivered"


def api_session(token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1 never through an HTTP(S)_PROXY from the environment
    if token:
        session.headers["Authorization"] = f"Token {token}"
    return session


def _post(session: requests.Session, url: str, body: dict | None = None) -> requests.Response:
    try:
        return session.post(url, json=body, timeout=30)
    except requests.RequestException as exc:
        raise ScenarioError(f"POST {url} failed: {exc!r}") from exc


def orders_place(session: requests.Session, base_url: str) -> list[ScenarioOrder]:
    """POST the seed's order, then the demo's, to /api/orders/, one right after the other."""
    placed = []
    for body in (SEED_ORDER, *DEMO_ORDERS):
        response = _post(session, f"{base_url}/api/orders/", body)
        if response.status_code != 201:
            raise ScenarioError(f"POST /api/orders/ for {body['customer']['name']} answered "
                                f"{response.status_code}: {response.text[:500]}")
        data = response.json()
        order = ScenarioOrder(
            order_id=data["order_id"], customer=data["customer"]["name"],
            items=", ".join(f"{item['quantity']}× {item['product_id']}" for item in data["items"]),
            total=data["total"], currency=data["currency"], placed_at=time.monotonic(),
            expected=order_expected(body), is_seed=body is SEED_ORDER, over_stock=order_over_stock(body),
        )
        order.apply(data)
        placed.append(order)
    return placed


def orders_cancel(session: requests.Session, base_url: str, orders: Sequence[ScenarioOrder]) -> list[str]:
    """Cancel the orders the scenario cancels (right after placing them, before picking can start)."""
    notes = []
    for order in (o for o in orders if o.expected == "cancelled"):
        response = _post(session, f"{base_url}/api/orders/{order.order_id}/cancel/")
        if response.status_code == 200:
            order.apply(response.json())
            notes.append(f"cancelled {order.short_id} ({order.customer})")
        elif response.status_code == 409:  # too late (picking began): the order is then delivered
            order.expected = "delivered"
            notes.append(f"cancel of {order.short_id} refused: {response.json().get('detail')}")
        else:
            raise ScenarioError(f"cancel of {order.order_id} answered {response.status_code}: {response.text[:300]}")
    return notes


def orders_refresh(session: requests.Session, base_url: str, orders: Sequence[ScenarioOrder]) -> list[ScenarioOrder]:
    """GET every unfinished order again; those whose status or delivery status changed.

    A failed request keeps the last known state (the next poll tries again).
    """
    changed = []
    for order in (o for o in orders if not o.is_final):
        try:
            response = session.get(f"{base_url}/api/orders/{order.order_id}/", timeout=10)
        except requests.RequestException:
            continue
        if response.status_code == 200:
            before = (order.status, order.delivery_status)
            order.apply(response.json())
            if (order.status, order.delivery_status) != before:
                changed.append(order)
    return changed


# --- compensations and the story --------------------------------------------------------
def compensation_describe(order: ScenarioOrder) -> str:
    """What was undone for an order that ended without delivery (read from warehouse and payments)."""
    if order.status not in UNDONE_STATUSES:
        return ""
    parts = []
    reservation = reservation_get(order_id=UUID(order.order_id))
    if reservation is not None and reservation.status == "released":
        returned = ", ".join(f"{line.quantity}× {line.stock_item.sku}" for line in reservation.lines.all())
        parts.append(f"stock returned ({returned})" if returned else "nothing was reserved")
    elif reservation is not None:
        parts.append(f"reservation {reservation.status}")
    payment = payment_for_order(order_id=UUID(order.order_id))
    if payment is not None:
        parts.append({"declined": "payment declined, nothing charged", "voided": "payment voided before capture",
                      "refunded": f"payment refunded ({payment.refund_reference})"}.get(
                          payment.status, f"payment {payment.status}"))
    return "; ".join(parts)


def compensations_wait(orders: Sequence[ScenarioOrder], *, sleep: Callable[[float], None]) -> None:
    """Let the compensations land (they travel after the order turned final), then describe them."""
    deadline = time.monotonic() + COMPENSATION_SECONDS
    pending = [o for o in orders if o.status in UNDONE_STATUSES]
    while True:
        for order in pending:
            order.compensation = compensation_describe(order)
        if time.monotonic() > deadline or all(
            o.compensation and "reservation reserved" not in o.compensation and "pending" not in o.compensation
            for o in pending
        ):
            return
        sleep(0.25)


def story_problems(orders: Sequence[ScenarioOrder]) -> list[str]:
    """Why the run failed; empty when every order is final and ended as the story means it to."""
    problems = []
    for order in orders:
        who = f"order {order.order_id} ({order.customer})"
        if not order.is_final:
            where = f", delivery {order.delivery_status}" if order.delivery_status else ""
            problems.append(f"{who} is stuck in {order.status}{where}")
        elif order.status != order.expected:
            problems.append(f"{who} ended {order.status}, expected {order.expected}: {order.describe()}")
        elif order.status in UNDONE_STATUSES and not any(
            done in order.compensation for done in ("stock returned", "nothing was reserved")
        ):
            problems.append(f"{who} ended {order.status} but its stock was not returned: "
                            f"{order.compensation or 'no compensation seen'}")
    if not any(o.is_seed for o in orders):
        problems.append("the seed's order was not placed")
    if not any(o.over_stock for o in orders):
        problems.append("no order of the scenario asks for more than the seed's stock (DEMO_ORDERS)")
    return problems

"""Every message type of the order flow, grouped by the app that sends it.

Queues and routing are ``messaging.topology``'s business; this module only says what a
message of each type carries.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Contract
from contracts.methods import CURRENCIES, PAYMENT_METHODS, SHIPPING_METHODS
from contracts.stages import ShipmentStage

Text = Annotated[str, Field(max_length=2000)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Sku = Annotated[str, Field(min_length=1, max_length=32)]
Quantity = Annotated[int, Field(ge=1, le=1_000_000)]
Money = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]
# a charge is for something: more than zero, and (12 digits) never more than an order's total holds
Charge = Annotated[Decimal, Field(gt=0, max_digits=12, decimal_places=2)]
if TYPE_CHECKING:  # Literals built from the lists at run time, which a type checker cannot read
    Currency = str
    ShippingMethodName = str
    PaymentMethodName = str
else:
    Currency = Literal[CURRENCIES]
    ShippingMethodName = Literal[tuple(str(method) for method in SHIPPING_METHODS)]
    PaymentMethodName = Literal[tuple(str(method) for method in PAYMENT_METHODS)]
# a counter that a PostgreSQL integer column holds
Count = Annotated[int, Field(ge=1, le=2**31 - 1)]
ShipmentId = Annotated[str, Field(min_length=1, max_length=40)]


class Part(BaseModel):
    """A piece of a payload (a line, a shortage): not a message of its own."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class OrderedLine(Part):
    product_id: Sku
    quantity: Quantity
    name: Annotated[str, Field(max_length=200)] = ""


class ReservedLine(Part):
    product_id: Sku
    quantity: Quantity


class Shortage(Part):
    product_id: Sku
    requested: Quantity
    available: Annotated[int, Field(ge=0, le=2**31 - 1)]


# --- shop -------------------------------------------------------------------------------------
class OrderPlaced(Contract):
    """A customer placed an order: for the warehouse to reserve, and for customer service to
    know whom to tell (its own copy of the contact).

    ``recipient`` and ``contact_email`` are the order's contact for the delivery, as the
    customer typed them; customer service mails only ``account_email``, the address of the
    account that placed the order, in ``language`` (the client's, when it said one).
    """

    TYPE = "order.placed"
    order_id: UUID
    recipient: Name
    contact_email: Annotated[str, Field(max_length=254)] = ""
    account_email: Annotated[str, Field(max_length=254)] = ""
    language: Annotated[str, Field(max_length=16)] = ""
    shipping_address: dict[str, Any]
    shipping_method: ShippingMethodName
    items: Annotated[list[OrderedLine], Field(min_length=1, max_length=500)]
    total: Money
    currency: Currency
    placed_at: datetime


class PaymentRequested(Contract):
    """Charge this order (the shop's request number ``request_number``): what payments needs
    to know, the amount included."""

    TYPE = "payment.requested"
    order_id: UUID
    request_number: Count
    amount: Charge
    currency: Currency
    method: PaymentMethodName


class OrderPaid(Contract):
    """Paid: the warehouse picks it."""

    TYPE = "order.paid"
    order_id: UUID


class OrderCancelled(Contract):
    """The customer cancelled: stock goes back, the payment is voided or refunded, the
    customer is told."""

    TYPE = "order.cancelled"
    order_id: UUID
    message: Text = ""


class OrderPaymentFailed(Contract):
    """The payment failed (declined, or no answer): the same compensation as a cancellation."""

    TYPE = "order.payment_failed"
    order_id: UUID
    message: Text = ""


class PaymentDeadlineDue(Contract):
    """The shop's timer: no answer to payment request ``request_number`` in time."""

    TYPE = "payment.deadline_due"
    order_id: UUID
    request_number: Count


# --- warehouse --------------------------------------------------------------------------------
class OrderConfirmed(Contract):
    """Every line reserved."""

    TYPE = "order.confirmed"
    order_id: UUID
    message: Text = ""
    items: list[ReservedLine] = []


class OrderRejected(Contract):
    """Not enough stock: nothing reserved."""

    TYPE = "order.rejected"
    order_id: UUID
    message: Text = ""
    unavailable: list[Shortage] = []


class PickingStarted(Contract):
    """A paid order is to be picked (for whoever picks)."""

    TYPE = "picking.started"
    order_id: UUID


class StockAdjusted(Contract):
    """A person changed a product's stock (a shelf count, goods received, damage written off)."""

    TYPE = "stock.adjusted"
    adjustment_id: UUID
    product_id: Sku
    reason: Literal["counted", "received", "damaged"]
    change: int
    on_hand: Annotated[int, Field(ge=0)]
    held: Annotated[int, Field(ge=0)]
    available: Annotated[int, Field(ge=0)]
    adjusted_at: datetime


class ShipmentRequested(Contract):
    """Picked: transport ships it."""

    TYPE = "shipment.requested"
    order_id: UUID
    recipient: Name
    shipping_address: dict[str, Any]
    shipping_method: ShippingMethodName
    items: list[ReservedLine] = []
    picked_at: datetime | None = None


# --- payments ---------------------------------------------------------------------------------
class PaymentResult(Contract):
    """Payments' answer to a request, or news of a refund."""

    TYPES = ("payment.captured", "payment.declined", "payment.refunded")
    order_id: UUID
    payment_id: UUID
    status: Literal["captured", "declined", "refunded"]
    amount: Money
    currency: Currency
    reference: Annotated[str, Field(max_length=64)] = ""
    reason: Text = ""

    def _message_type_of_fields(self) -> str:
        return f"payment.{self.status}"


class PaymentChargeDue(Contract):
    """Payments' timer: the provider's answer to a charge is due."""

    TYPE = "payment.charge_due"
    order_id: UUID
    payment_id: UUID


# --- transport --------------------------------------------------------------------------------
class ShipmentStatusChanged(Contract):
    """A shipment reached a stage."""

    TYPE = "shipment.status_changed"
    order_id: UUID
    shipment_id: ShipmentId
    status: ShipmentStage
    message: Annotated[str, Field(max_length=300)]
    vehicle_id: Annotated[str, Field(max_length=20)] | None = None
    timestamp: datetime


# --- support ----------------------------------------------------------------------------------
class CustomerNotified(Contract):
    """Customer service told the customer about a stage of their shipment."""

    TYPE = "customer.notified"
    order_id: UUID
    shipment_id: ShipmentId
    status: ShipmentStage
    message: Text
    timestamp: datetime
    notification_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None

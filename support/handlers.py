"""Messages customer service reacts to: delivery updates from transport, and the shop's and the
warehouse's events (a new order's contact, its rejection or payment, an order that ended
without delivery)."""

from __future__ import annotations

from contracts.messages import (
    OrderCancelled,
    OrderPaymentFailed,
    OrderPlaced,
    OrderRejected,
    PickingStarted,
    ShipmentStatusChanged,
)
from messaging.envelope import Message
from messaging.registry import message_handler
from messaging.topology import DELIVERY_UPDATES, SUPPORT_REQUESTS
from support import services
from support.mails import language_for

CONSUMER = "support.delivery_updates"
REQUESTS_CONSUMER = "support.support_requests"


@message_handler(DELIVERY_UPDATES, ShipmentStatusChanged, consumer=CONSUMER)
def on_shipment_status_changed(data: ShipmentStatusChanged, message: Message) -> None:
    services.tracking_record_stage(order_id=data.order_id, shipment_id=data.shipment_id, status=data.status,
                                   message=data.message, timestamp=data.timestamp)


@message_handler(SUPPORT_REQUESTS, OrderPlaced, consumer=REQUESTS_CONSUMER)
def on_order_placed(data: OrderPlaced, message: Message) -> None:
    # mailed: the account's own address only; the order's contact_email is the delivery's
    services.customer_contact_record(
        order_id=data.order_id, name=data.recipient, email=data.account_email,
        language=language_for(country=str(data.shipping_address.get("country") or ""), requested=data.language),
        shipping_method=data.shipping_method,
        summary=services.OrderSummary(
            lines=[services.SummaryLine(product_id=line.product_id, name=line.name, quantity=line.quantity)
                   for line in data.items],
            total=data.total, currency=data.currency))


@message_handler(SUPPORT_REQUESTS, OrderRejected, consumer=REQUESTS_CONSUMER)
def on_order_rejected(data: OrderRejected, message: Message) -> None:
    services.customer_tell_order_rejected(
        order_id=data.order_id, message=data.message,
        unavailable=[services.Shortage(product_id=s.product_id, requested=s.requested, available=s.available)
                     for s in data.unavailable])


@message_handler(SUPPORT_REQUESTS, PickingStarted, consumer=REQUESTS_CONSUMER)
def on_picking_started(data: PickingStarted, message: Message) -> None:
    # the warehouse picks an order once it is paid: the customer hears it is paid and confirmed
    services.customer_tell_order_paid(order_id=data.order_id)


@message_handler(SUPPORT_REQUESTS, OrderCancelled, consumer=REQUESTS_CONSUMER)
def on_order_cancelled(data: OrderCancelled, message: Message) -> None:
    services.customer_tell_order_outcome(order_id=data.order_id, outcome="cancelled", message=data.message)


@message_handler(SUPPORT_REQUESTS, OrderPaymentFailed, consumer=REQUESTS_CONSUMER)
def on_order_payment_failed(data: OrderPaymentFailed, message: Message) -> None:
    services.customer_tell_order_outcome(order_id=data.order_id, outcome="payment_failed", message=data.message)

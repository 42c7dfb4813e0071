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
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import DELIVERY_UPDATES, SUPPORT_REQUESTS
from support import services
from support.mails import language_for

CONSUMER = "support.delivery_updates"
REQUESTS_CONSUMER = "support.support_requests"


@message_batch_handler(DELIVERY_UPDATES, ShipmentStatusChanged, consumer=CONSUMER)
def on_shipment_status_changed(batch: MessageBatch[ShipmentStatusChanged]) -> None:
    """The stages a worker holds, recorded together (set-based), then the shop told of each."""
    recorded = services.tracking_stages_record([
        services.StageReport(order_id=data.order_id, shipment_id=data.shipment_id, status=data.status,
                             message=data.message, timestamp=data.timestamp) for data in batch.payloads])
    for _pair, stage in zip(batch.each(), recorded, strict=True):
        if stage is not None:
            services.shop_tell_stage(stage)


@message_batch_handler(SUPPORT_REQUESTS, OrderPlaced, consumer=REQUESTS_CONSUMER)
def on_order_placed(batch: MessageBatch[OrderPlaced]) -> None:
    """New orders' contacts, kept together (set-based)."""
    placed = batch.payloads
    # mailed: the account's own address only; the order's contact_email is the delivery's
    services.customer_contacts_record([services.ContactReport(
        order_id=data.order_id, name=data.recipient, email=data.account_email,
        language=language_for(country=str(data.shipping_address.get("country") or ""), requested=data.language),
        shipping_method=data.shipping_method,
        summary=services.OrderSummary(
            lines=[services.SummaryLine(product_id=line.product_id, name=line.name, quantity=line.quantity)
                   for line in data.items],
            total=data.total, currency=data.currency)) for data in placed])
    for _message in batch.each():
        pass  # written together above; nothing more for each


@message_handler(SUPPORT_REQUESTS, OrderRejected, consumer=REQUESTS_CONSUMER)
def on_order_rejected(data: OrderRejected, message: Message) -> None:
    services.customer_tell_order_rejected(
        order_id=data.order_id, message=data.message,
        unavailable=[services.Shortage(product_id=s.product_id, requested=s.requested, available=s.available)
                     for s in data.unavailable])


@message_batch_handler(SUPPORT_REQUESTS, PickingStarted, consumer=REQUESTS_CONSUMER)
def on_picking_started(batch: MessageBatch[PickingStarted]) -> None:
    # the warehouse picks an order once it is paid: the customer hears it is paid and confirmed
    services.customer_tell_orders_paid([data.order_id for data in batch.payloads])
    for _pair in batch.each():
        pass  # written together above; nothing more for each


@message_handler(SUPPORT_REQUESTS, OrderCancelled, consumer=REQUESTS_CONSUMER)
def on_order_cancelled(data: OrderCancelled, message: Message) -> None:
    services.customer_tell_order_outcome(order_id=data.order_id, outcome="cancelled", message=data.message)


@message_handler(SUPPORT_REQUESTS, OrderPaymentFailed, consumer=REQUESTS_CONSUMER)
def on_order_payment_failed(data: OrderPaymentFailed, message: Message) -> None:
    services.customer_tell_order_outcome(order_id=data.order_id, outcome="payment_failed", message=data.message)

"""Messages the warehouse reacts to: new orders, and the shop's word on paid, cancelled and failed ones."""

from __future__ import annotations

from contracts.messages import OrderCancelled, OrderPaid, OrderPaymentFailed, OrderPlaced
from messaging.envelope import Message
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS
from warehouse import services

CONSUMER = "warehouse.new_orders"
FULFILMENT_CONSUMER = "warehouse.fulfilment_requests"


@message_batch_handler(NEW_ORDERS, OrderPlaced, consumer=CONSUMER)
def on_orders_placed(batch: MessageBatch[OrderPlaced]) -> None:
    """The new orders a worker holds: every stock row they want locked first, in one statement
    in primary-key order (the global lock order), then each order reserved in its turn."""
    services.stock_lock(skus={item.product_id for data in batch.payloads for item in data.items})
    for data, message in batch.each():
        on_order_placed(data, message)


def on_order_placed(data: OrderPlaced, message: Message) -> None:
    # The warehouse keeps what it needs to reserve and, later, to hand the order to transport.
    services.stock_reserve(
        order_id=data.order_id,
        lines=[services.RequestedLine(sku=item.product_id, quantity=item.quantity, name=item.name)
               for item in data.items],
        recipient=data.recipient,
        shipping_address=data.shipping_address,
        shipping_method=data.shipping_method,
    )


@message_handler(FULFILMENT_REQUESTS, OrderPaid, consumer=FULFILMENT_CONSUMER)
def on_order_paid(data: OrderPaid, message: Message) -> None:
    services.picking_start(order_id=data.order_id)


@message_handler(FULFILMENT_REQUESTS, OrderCancelled, consumer=FULFILMENT_CONSUMER)
def on_order_cancelled(data: OrderCancelled, message: Message) -> None:
    services.reservation_release(order_id=data.order_id, reason=data.message or "order cancelled")


@message_handler(FULFILMENT_REQUESTS, OrderPaymentFailed, consumer=FULFILMENT_CONSUMER)
def on_order_payment_failed(data: OrderPaymentFailed, message: Message) -> None:
    services.reservation_release(order_id=data.order_id, reason=data.message or "payment failed")

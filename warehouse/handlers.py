"""Messages the warehouse reacts to: new orders, and the shop's word on paid, cancelled and failed ones."""

from __future__ import annotations

from contracts.messages import OrderCancelled, OrderPaid, OrderPaymentFailed, OrderPlaced
from messaging.envelope import Message
from messaging.payloads import payload_validated
from messaging.registry import MessageBatch, message_batch_handler, message_handler
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS
from warehouse import services

CONSUMER = "warehouse.new_orders"
FULFILMENT_CONSUMER = "warehouse.fulfilment_requests"


@message_batch_handler(NEW_ORDERS, OrderPlaced.TYPE, consumer=CONSUMER)
def on_orders_placed(batch: MessageBatch) -> None:
    """The new orders a worker holds: every stock row they want locked first, in one statement
    in primary-key order (the global lock order), then each order reserved in its turn."""
    services.stock_lock(skus={item.product_id for message in batch
                              for item in payload_validated(OrderPlaced, message).items})
    for message in batch.each():
        on_order_placed(message)


def on_order_placed(message: Message) -> None:
    # The warehouse keeps what it needs to reserve and, later, to hand the order to transport.
    data = payload_validated(OrderPlaced, message)
    services.stock_reserve(
        order_id=data.order_id,
        lines=[services.RequestedLine(sku=item.product_id, quantity=item.quantity, name=item.name)
               for item in data.items],
        recipient=data.recipient,
        shipping_address=data.shipping_address,
        shipping_method=data.shipping_method,
    )


@message_handler(FULFILMENT_REQUESTS, OrderPaid.TYPE, consumer=FULFILMENT_CONSUMER)
def on_order_paid(message: Message) -> None:
    data = payload_validated(OrderPaid, message)
    services.picking_start(order_id=data.order_id)


@message_handler(FULFILMENT_REQUESTS, OrderCancelled.TYPE, consumer=FULFILMENT_CONSUMER)
def on_order_cancelled(message: Message) -> None:
    data = payload_validated(OrderCancelled, message)
    services.reservation_release(order_id=data.order_id, reason=data.message or "order cancelled")


@message_handler(FULFILMENT_REQUESTS, OrderPaymentFailed.TYPE, consumer=FULFILMENT_CONSUMER)
def on_order_payment_failed(message: Message) -> None:
    data = payload_validated(OrderPaymentFailed, message)
    services.reservation_release(order_id=data.order_id, reason=data.message or "payment failed")

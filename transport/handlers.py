"""Messages transport reacts to: picked orders to ship."""

from __future__ import annotations

from contracts.messages import ShipmentRequested
from messaging.envelope import Message
from messaging.registry import message_handler
from messaging.topology import SHIPPING_ORDERS
from transport import services

CONSUMER = "transport.shipping_orders"


@message_handler(SHIPPING_ORDERS, ShipmentRequested, consumer=CONSUMER)
def on_shipment_requested(data: ShipmentRequested, message: Message) -> None:
    services.shipment_create(order_id=data.order_id, recipient=data.recipient,
                             shipping_address=data.shipping_address, shipping_method=data.shipping_method)

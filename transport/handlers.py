"""Messages transport reacts to: picked orders to ship."""

from __future__ import annotations

from contracts.messages import ShipmentRequested
from messaging.envelope import Message
from messaging.payloads import payload_validated
from messaging.registry import message_handler
from messaging.topology import SHIPPING_ORDERS
from transport import services

CONSUMER = "transport.shipping_orders"


@message_handler(SHIPPING_ORDERS, ShipmentRequested.TYPE, consumer=CONSUMER)
def on_shipment_requested(message: Message) -> None:
    data = payload_validated(ShipmentRequested, message)
    services.shipment_create(order_id=data.order_id, recipient=data.recipient,
                             shipping_address=data.shipping_address, shipping_method=data.shipping_method)

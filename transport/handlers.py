"""Messages transport reacts to: picked orders to ship."""

from __future__ import annotations

from rest_framework import serializers

from messaging.envelope import Message
from messaging.payloads import payload_validated
from messaging.registry import message_handler
from messaging.topology import SHIPPING_ORDERS
from transport import services

CONSUMER = "transport.shipping_orders"


class ShipmentRequestedPayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    recipient = serializers.CharField(max_length=200)
    shipping_address = serializers.DictField()
    shipping_method = serializers.CharField(max_length=32)


@message_handler(SHIPPING_ORDERS, "shipment.requested", consumer=CONSUMER)
def on_shipment_requested(message: Message) -> None:
    data = payload_validated(ShipmentRequestedPayload, message)
    services.shipment_create(
        order_id=data["order_id"], recipient=data["recipient"],
        shipping_address=data["shipping_address"], shipping_method=data["shipping_method"],
    )

"""Messages the warehouse reacts to: new orders."""

from __future__ import annotations

from rest_framework import serializers

from messaging.envelope import Message
from messaging.payloads import OrderEventPayload, payload_validated
from messaging.registry import message_handler
from messaging.topology import FULFILMENT_REQUESTS, NEW_ORDERS
from warehouse import services

CONSUMER = "warehouse.new_orders"
FULFILMENT_CONSUMER = "warehouse.fulfilment_requests"


class LinePayload(serializers.Serializer):
    product_id = serializers.CharField(max_length=32)
    quantity = serializers.IntegerField(min_value=1, max_value=1_000_000)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class OrderPlacedPayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    recipient = serializers.CharField(max_length=200)
    shipping_address = serializers.DictField()
    shipping_method = serializers.CharField(max_length=32)
    items = LinePayload(many=True, allow_empty=False, max_length=500)


@message_handler(NEW_ORDERS, "order.placed", consumer=CONSUMER)
def on_order_placed(message: Message) -> None:
    data = payload_validated(OrderPlacedPayload, message)
    services.stock_reserve(
        order_id=data["order_id"],
        lines=[services.RequestedLine(sku=i["product_id"], quantity=i["quantity"], name=i["name"]) for i in data["items"]],
        recipient=data["recipient"],
        shipping_address=data["shipping_address"],
        shipping_method=data["shipping_method"],
    )



@message_handler(FULFILMENT_REQUESTS, "order.paid", consumer=FULFILMENT_CONSUMER)
def on_order_paid(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.picking_start(order_id=data["order_id"])


@message_handler(FULFILMENT_REQUESTS, "order.cancelled", consumer=FULFILMENT_CONSUMER)
def on_order_cancelled(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.reservation_release(order_id=data["order_id"], reason=data["message"] or "order cancelled")


@message_handler(FULFILMENT_REQUESTS, "order.payment_failed", consumer=FULFILMENT_CONSUMER)
def on_order_payment_failed(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.reservation_release(order_id=data["order_id"], reason=data["message"] or "payment failed")

"""Messages customer service reacts to: delivery updates from transport."""

from __future__ import annotations

from rest_framework import serializers

from messaging.envelope import Message
from messaging.payloads import OrderEventPayload, payload_validated
from messaging.registry import message_handler
from messaging.topology import DELIVERY_UPDATES, SUPPORT_REQUESTS
from support import services
from support.models import TRACKING_RANK

CONSUMER = "support.delivery_updates"
REQUESTS_CONSUMER = "support.support_requests"


class DeliveryUpdatePayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    shipment_id = serializers.CharField(max_length=40)
    status = serializers.ChoiceField(choices=sorted(TRACKING_RANK))
    message = serializers.CharField(max_length=300)
    timestamp = serializers.DateTimeField()


@message_handler(DELIVERY_UPDATES, "shipment.status_changed", consumer=CONSUMER)
def on_shipment_status_changed(message: Message) -> None:
    data = payload_validated(DeliveryUpdatePayload, message)
    services.tracking_record_stage(
        order_id=data["order_id"], shipment_id=data["shipment_id"], status=data["status"],
        message=data["message"], timestamp=data["timestamp"],
    )



@message_handler(SUPPORT_REQUESTS, "order.cancelled", consumer=REQUESTS_CONSUMER)
def on_order_cancelled(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.customer_tell_order_outcome(order_id=data["order_id"], outcome="cancelled", message=data["message"])


@message_handler(SUPPORT_REQUESTS, "order.payment_failed", consumer=REQUESTS_CONSUMER)
def on_order_payment_failed(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.customer_tell_order_outcome(order_id=data["order_id"], outcome="payment_failed", message=data["message"])

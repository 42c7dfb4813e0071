"""Messages payments reacts to: confirmed orders to charge, retries, compensations."""

from __future__ import annotations

from rest_framework import serializers

from messaging.envelope import Message
from messaging.payloads import OrderEventPayload, payload_validated
from messaging.registry import message_handler
from messaging.topology import PAYMENT_REQUESTS
from payments import services

CONSUMER = "payments.payment_requests"



@message_handler(PAYMENT_REQUESTS, "order.confirmed", consumer=CONSUMER)
def on_order_confirmed(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.payment_request(order_id=data["order_id"])


@message_handler(PAYMENT_REQUESTS, "payment.requested", consumer=CONSUMER)
def on_payment_requested_again(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.payment_request(order_id=data["order_id"])


class ChargeDuePayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    payment_id = serializers.UUIDField()


@message_handler(PAYMENT_REQUESTS, services.CHARGE_DUE, consumer=CONSUMER)
def on_charge_due(message: Message) -> None:
    data = payload_validated(ChargeDuePayload, message)
    services.payment_charge(payment_id=data["payment_id"])


@message_handler(PAYMENT_REQUESTS, "order.cancelled", consumer=CONSUMER)
def on_order_cancelled(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.payment_compensate(order_id=data["order_id"], reason=data["message"] or "order cancelled")


@message_handler(PAYMENT_REQUESTS, "order.payment_failed", consumer=CONSUMER)
def on_order_payment_failed(message: Message) -> None:
    data = payload_validated(OrderEventPayload, message)
    services.payment_compensate(order_id=data["order_id"], reason=data["message"] or "payment failed")

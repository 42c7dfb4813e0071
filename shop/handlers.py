"""Messages the shop reacts to: the warehouse's answer and the customer notifications."""

from __future__ import annotations

from rest_framework import serializers

from messaging.envelope import Message
from messaging.payloads import payload_validated as validated
from messaging.registry import message_handler
from messaging.topology import CUSTOMER_NOTIFICATIONS, ORDER_CONFIRMATIONS, PAYMENT_RESULTS
from shop import services

CONSUMER_CONFIRMATIONS = "shop.order_confirmations"
CONSUMER_NOTIFICATIONS = "shop.customer_notifications"
CONSUMER_PAYMENTS = "shop.payment_results"


class OrderConfirmationPayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    message = serializers.CharField(max_length=2000, allow_blank=True)


@message_handler(ORDER_CONFIRMATIONS, "order.confirmed", consumer=CONSUMER_CONFIRMATIONS)
def on_order_confirmed(message: Message) -> None:
    data = validated(OrderConfirmationPayload, message)
    services.order_confirmation_apply(order_id=data["order_id"], confirmed=True, message=data["message"])


@message_handler(ORDER_CONFIRMATIONS, "order.rejected", consumer=CONSUMER_CONFIRMATIONS)
def on_order_rejected(message: Message) -> None:
    data = validated(OrderConfirmationPayload, message)
    services.order_confirmation_apply(order_id=data["order_id"], confirmed=False, message=data["message"])


class CustomerNotificationPayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    shipment_id = serializers.CharField(max_length=40)
    status = serializers.ChoiceField(choices=sorted(services.DELIVERY_RANK))
    message = serializers.CharField(max_length=2000, allow_blank=True)
    timestamp = serializers.DateTimeField()


@message_handler(CUSTOMER_NOTIFICATIONS, "customer.notified", consumer=CONSUMER_NOTIFICATIONS)
def on_customer_notified(message: Message) -> None:
    data = validated(CustomerNotificationPayload, message)
    services.order_delivery_update_apply(
        order_id=data["order_id"], shipment_id=data["shipment_id"], status=data["status"],
        message=data["message"], timestamp=data["timestamp"],
    )


class PaymentResultPayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["captured", "declined", "refunded"])
    reference = serializers.CharField(max_length=64, allow_blank=True)
    reason = serializers.CharField(max_length=2000, allow_blank=True)


def _payment_result(message: Message) -> None:
    data = validated(PaymentResultPayload, message)
    services.order_payment_result_apply(order_id=data["order_id"], status=data["status"],
                                        reference=data["reference"], reason=data["reason"])


for _type in ("payment.captured", "payment.declined", "payment.refunded"):
    message_handler(PAYMENT_RESULTS, _type, consumer=CONSUMER_PAYMENTS)(_payment_result)


class PaymentDeadlinePayload(serializers.Serializer):
    order_id = serializers.UUIDField()
    request_number = serializers.IntegerField(min_value=1)


@message_handler(PAYMENT_RESULTS, services.PAYMENT_DEADLINE_DUE, consumer=CONSUMER_PAYMENTS)
def on_payment_deadline_due(message: Message) -> None:
    data = validated(PaymentDeadlinePayload, message)
    services.order_payment_timeout(order_id=data["order_id"], request_number=data["request_number"])

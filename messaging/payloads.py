"""Validation of message payloads before any handler acts on them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from messaging.envelope import InvalidMessage, Message


def payload_validated(serializer_class: type[serializers.Serializer], message: Message) -> dict[str, Any]:
    """The payload validated by ``serializer_class``; InvalidMessage (-> dead letter) otherwise."""
    serializer = serializer_class(data=message.payload)
    if not serializer.is_valid():
        errors = {field: [str(e) for e in errs] if isinstance(errs, list) else errs
                  for field, errs in serializer.errors.items()}
        raise InvalidMessage(f"invalid {message.type} payload: {errors}")
    return serializer.validated_data


class OrderEventPayload(serializers.Serializer):
    """The payload of the shop's order events (order.paid, order.cancelled, order.payment_failed,
    payment.requested) and of order.confirmed as payments reads it: which order, and why."""

    order_id = serializers.UUIDField()
    message = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

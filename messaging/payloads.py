"""Validation of message payloads before any handler acts on them."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from messaging.envelope import InvalidMessage, Message

# One bound serializer per payload class and process: building a DRF serializer deep-copies
# its declared fields, which would cost more than validating a small payload. A worker
# handles one message at a time, and run_validation() keeps no state on the instance.
_validators: dict[type[serializers.Serializer], serializers.Serializer] = {}


def payload_validated(serializer_class: type[serializers.Serializer], message: Message) -> dict[str, Any]:
    """The payload validated by ``serializer_class``; InvalidMessage (-> dead letter) otherwise."""
    validator = _validators.get(serializer_class)
    if validator is None:
        validator = _validators[serializer_class] = serializer_class()
    try:
        return validator.run_validation(message.payload)
    except serializers.ValidationError as exc:
        detail = exc.detail if isinstance(exc.detail, dict) else {"payload": exc.detail}
        errors = {field: [str(e) for e in errs] if isinstance(errs, list) else errs for field, errs in detail.items()}
        raise InvalidMessage(f"invalid {message.type} payload: {errors}") from None


class OrderEventPayload(serializers.Serializer):
    """The payload of the shop's order events (order.paid, order.cancelled, order.payment_failed,
    payment.requested) and of order.confirmed as payments reads it: which order, and why."""

    order_id = serializers.UUIDField()
    message = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

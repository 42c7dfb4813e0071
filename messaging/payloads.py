"""Payloads in and out: checked against their contract (``contracts``), the one definition of each.

A consumer reads ``payload_validated(OrderPlaced, message)``: the contract's instance, or
InvalidMessage (the message is parked as a dead letter) when the payload breaks it. A producer
hands the outbox a contract instance; ``payload_json()`` turns it into the message body.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from contracts import Contract, contract_for
from messaging.envelope import InvalidMessage, Message

C = TypeVar("C", bound=Contract)


def payload_validated(contract: type[C], message: Message) -> C:
    """The payload as ``contract``; InvalidMessage (-> dead letter) when it breaks it."""
    try:
        return contract.model_validate(message.payload)
    except pydantic.ValidationError as exc:
        errors = {".".join(str(part) for part in error["loc"]) or "payload": error["msg"] for error in exc.errors()}
        raise InvalidMessage(f"invalid {message.type} payload: {errors}") from None


def payload_json(message_type: str, payload: Contract | dict[str, Any]) -> dict[str, Any]:
    """The JSON object to send for ``message_type``: the contract instance's, or a plain dict
    checked against the type's contract. A type without a contract is a programming error."""
    try:
        contract = contract_for(message_type)
    except KeyError:
        raise ValueError(f"no contract for message type {message_type!r} (see contracts/messages.py)") from None
    if isinstance(payload, Contract):
        if not isinstance(payload, contract):
            raise ValueError(f"{type(payload).__name__} is not the contract of {message_type!r} ({contract.__name__})")
        return payload.payload()
    return contract.model_validate(payload).payload()

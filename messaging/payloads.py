"""Payloads in and out: checked against their contract (``contracts``), the one definition of each.

The registry validates what a consumer receives (``payload_validated``) before its handler
runs: the handler gets the contract's instance, and a payload that breaks it raises
InvalidMessage (the message is parked as a dead letter). A producer hands the outbox a
contract instance; ``payload_json()`` turns it into the message body.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from contracts import Contract
from messaging.envelope import InvalidMessage, Message

C = TypeVar("C", bound=Contract)


def payload_validated(contract: type[C], message: Message) -> C:
    """The payload as ``contract``; InvalidMessage (-> dead letter) when it breaks it, or when a
    contract that serves several types says it is another type than the envelope's."""
    try:
        data = contract.model_validate(message.payload)
    except pydantic.ValidationError as exc:
        errors = {".".join(str(part) for part in error["loc"]) or "payload": error["msg"] for error in exc.errors()}
        raise InvalidMessage(f"invalid {message.type} payload: {errors}") from None
    if contract.TYPES:
        try:
            message_type = data.message_type()
        except ValueError as exc:
            raise InvalidMessage(f"invalid {message.type} payload: {{'payload': {str(exc)!r}}}") from None
        if message_type != message.type:
            raise InvalidMessage(f"invalid {message.type} payload: "
                                 f"{{'payload': 'the payload is of type {message_type}'}}")
    return data


def payload_json(payload: Contract) -> dict[str, Any]:
    """The JSON object to send: the contract instance's. A plain dict is a programming error."""
    if not isinstance(payload, Contract):
        raise TypeError(f"a message payload is a contract instance (contracts/), not {type(payload).__name__}")
    return payload.payload()

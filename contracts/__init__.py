"""The published language: every message type's payload, defined once.

A domain app never imports another; what it needs to know travels in messages. Their shape
is defined here, once per type, and used by the producer (``OrderPlaced(...)`` then
``outbox_emit(..., message=...)``) and by every consumer (``message.payload_as(OrderPlaced)``
in a handler). This package imports nothing of the project: any app may import it.

Payloads are plain JSON: ids as strings, money as decimal strings, times as ISO 8601.
Fields a consumer does not know are ignored, so a producer may add one before its
consumers read it.
"""

from contracts.base import Contract, contract_for, contract_types

__all__ = ["Contract", "contract_for", "contract_types"]

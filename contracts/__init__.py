"""The published language: every message type's payload, defined once.

A domain app never imports another; what it needs to know travels in messages. Their shape
is defined here, once per type, and used by the producer (``outbox_publish(OrderPlaced(...),
...)``: the contract knows its type) and by every consumer (``@message_handler(NEW_ORDERS,
OrderPlaced, ...)``: the handler receives the validated ``OrderPlaced``). This package imports
nothing of the project: any app may import it.

Payloads are plain JSON: ids as strings, money as decimal strings, times as ISO 8601.
Fields a consumer does not know are ignored, so a producer may add one before its
consumers read it.
"""

from contracts.base import Contract, contract_for, contract_types

__all__ = ["Contract", "contract_for", "contract_types"]

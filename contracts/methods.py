"""The published lists of shipping and payment methods: the only values an order may name.

The API enumerates them in the OpenAPI schema and the catalogue; warehouse, transport and
payments receive nothing else.
"""

from __future__ import annotations

from enum import StrEnum


class ShippingMethod(StrEnum):
    STANDARD = "standard"
    EXPRESS = "express"


class PaymentMethod(StrEnum):
    CREDIT_CARD = "credit_card"
    # The documented test value: the simulated payment provider always declines it.
    CARD_DECLINED = "card_declined"


SHIPPING_METHODS: tuple[str, ...] = tuple(ShippingMethod)
PAYMENT_METHODS: tuple[str, ...] = tuple(PaymentMethod)

# The currencies prices are kept in (the catalogue's); messages name no other.
CURRENCIES: tuple[str, ...] = ("EUR",)

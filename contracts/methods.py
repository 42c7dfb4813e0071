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
# Values for trying the API out, never a way to pay: the catalogue lists them apart.
TEST_PAYMENT_METHODS: tuple[str, ...] = (PaymentMethod.CARD_DECLINED.value,)

# What each value means, as the API's documentation says it.
SHIPPING_METHOD_CHOICES: tuple[tuple[str, str], ...] = (
    (ShippingMethod.STANDARD.value, "standard delivery"),
    (ShippingMethod.EXPRESS.value, "express delivery"),
)
PAYMENT_METHOD_CHOICES: tuple[tuple[str, str], ...] = (
    (PaymentMethod.CREDIT_CARD.value, "credit card"),
    (PaymentMethod.CARD_DECLINED.value,
     "TEST VALUE, not a way to pay: the simulated payment provider always declines it (to try a failed payment)"),
)

# The currencies prices are kept in (the catalogue's); messages name no other.
CURRENCIES: tuple[str, ...] = ("EUR",)

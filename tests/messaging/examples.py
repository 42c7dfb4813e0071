"""Payloads that keep to their contracts, for the messaging tests."""

from __future__ import annotations

from typing import Any


def order_placed_payload(order_id: str, quantity: int = 1, product_id: str = "PRD001") -> dict[str, Any]:
    return {
        "order_id": order_id,
        "recipient": "Jaan Tamm",
        "contact_email": "jaan.tamm@example.com",
        "account_email": "jaan.tamm@example.com",
        "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn"},
        "shipping_method": "express",
        "items": [{"product_id": product_id, "quantity": quantity}],
        "total": "1299.99",
        "currency": "EUR",
        "placed_at": "2026-11-27T18:46:59+00:00",
    }

"""The seed's catalogue, stock and fleet."""

from decimal import Decimal
from typing import Any

PRODUCTS = [
    # sku, name, price (EUR), warehouse location, stock
    ("PRD001", "Laptop", Decimal("1299.99"), "A-01-01", 10),
    ("PRD002", "Monitor 27\"", Decimal("329.99"), "A-02-03", 15),
    ("PRD003", "Mechanical keyboard", Decimal("119.99"), "B-01-02", 20),
    ("PRD004", "Wireless mouse", Decimal("99.99"), "B-03-01", 25),
]

VEHICLES = [
    ("VEH001", "van", "Tallinn"),
    ("VEH002", "truck", "Tartu"),
    ("VEH003", "van", "Pärnu"),
]

# The seed's order: Jaan Tamm's laptop and two keyboards.
SEED_ORDER: dict[str, Any] = {
    "customer": {"name": "Jaan Tamm", "email": "jaan.tamm@example.com", "phone": "+372 5555 1234"},
    "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117", "country": "Estonia"},
    "items": [
        {"product_id": "PRD001", "name": "Laptop", "quantity": 1, "unit_price": 1299.99},
        {"product_id": "PRD003", "name": "Mechanical keyboard", "quantity": 2, "unit_price": 119.99},
    ],
    "shipping_method": "express",
    "payment_method": "credit_card",
}


def _order(name: str, email: str, phone: str, street: str, city: str, postal_code: str,
           items: list[tuple[str, int]], shipping_method: str = "standard",
           payment_method: str = "credit_card") -> dict:
    """An order body in the seed's shape (names and prices are informative: the catalogue sets both)."""
    catalogue = {sku: (product_name, price) for sku, product_name, price, _location, _stock in PRODUCTS}
    return {
        "customer": {"name": name, "email": email, "phone": phone},
        "shipping_address": {"street": street, "city": city, "postal_code": postal_code, "country": "Estonia"},
        "items": [
            {"product_id": sku, "name": catalogue[sku][0], "quantity": quantity, "unit_price": float(catalogue[sku][1])}
            for sku, quantity in items
        ],
        "shipping_method": shipping_method,
        "payment_method": payment_method,
    }


# `manage.py demo` places these right after SEED_ORDER. Six of the seven fit the seed's stock,
# so more shipments than the three vehicles are in flight at once (some wait for a vehicle);
# Kristjan Lepp wants 11 laptops where the seed stocks 10, so the warehouse rejects his order.
DEMO_ORDERS = [
    _order("Mari Kask", "mari.kask@example.com", "+372 5555 2345", "Riia 12", "Tartu", "51010",
           [("PRD002", 1), ("PRD004", 1)]),
    _order("Andres Saar", "andres.saar@example.com", "+372 5555 3456", "Rüütli 21", "Pärnu", "80010",
           [("PRD004", 2)], "express"),
    _order("Kristjan Lepp", "kristjan.lepp@example.com", "+372 5555 4567", "Tallinna 3", "Viljandi", "71020",
           [("PRD001", 11)]),
    _order("Liis Mägi", "liis.magi@example.com", "+372 5555 5678", "Puškini 8", "Narva", "20308",
           [("PRD001", 1), ("PRD004", 1)]),
    _order("Kadri Rebane", "kadri.rebane@example.com", "+372 5555 6789", "Pikk 17", "Rakvere", "44307",
           [("PRD003", 3)]),
    _order("Toomas Kukk", "toomas.kukk@example.com", "+372 5555 7890", "Lossi 4", "Kuressaare", "93815",
           [("PRD002", 2)], "express"),
]

# Two orders that end without delivery, and show the saga's compensations:
# Piret's card is always declined (the documented test value), so her reservation is released;
# Marko cancels his order right after placing it, so his stock goes back and any payment is
# voided or refunded.
DECLINED_ORDER = _order("Piret Ilves", "piret.ilves@example.com", "+372 5555 8901", "Vabaduse 2", "Haapsalu",
                        "90502", [("PRD002", 2)], payment_method="card_declined")
CANCELLED_ORDER = _order("Marko Sepp", "marko.sepp@example.com", "+372 5555 9012", "Aia 6", "Paide", "72711",
                         [("PRD003", 1), ("PRD004", 1)])
DEMO_ORDERS.extend([DECLINED_ORDER, CANCELLED_ORDER])

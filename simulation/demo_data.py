"""The seed's catalogue, stock and fleet."""

from decimal import Decimal

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
SEED_ORDER = {
    "customer": {"name": "Jaan Tamm", "email": "jaan.tamm@example.com", "phone": "+372 5555 1234"},
    "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117", "country": "Estonia"},
    "items": [
        {"product_id": "PRD001", "name": "Laptop", "quantity": 1, "unit_price": 1299.99},
        {"product_id": "PRD003", "name": "Mechanical keyboard", "quantity": 2, "unit_price": 119.99},
    ],
    "shipping_method": "express",
    "payment_method": "credit_card",
}

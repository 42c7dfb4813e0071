"""What the API's documentation tells a newcomer about orders: the order's life, and examples
with real values (the seed's order, as it is placed and as it ends)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

from shop.idempotency import WINDOW_TEXT

ORDER_ID = "3f2b8c1e-7d4a-4e6b-9a51-0c8e2d7f6a13"
SHIPMENT_ID = "SHP-7C1F0A9E42B3D5816E07"

PLACE_ORDER_DESCRIPTION = """\
Places an order for the signed-in customer and answers **at once**, with `201` and
`status: "new"`: nothing has been reserved or charged yet. Prices come from the catalogue
(`name` and `unit_price` sent by a client are ignored).

**What happens next, asynchronously** (through messages, seconds to days later):

1. the warehouse reserves every line, or none: `confirmed`, or `rejected` (the reason is in
   `warehouse_confirmation.message`);
2. payments charges the order: `paid`, or `payment_failed` (the reserved stock goes back);
3. transport picks it up, and `shipment_id` appears: `picked_up` → `in_transit` →
   `out_for_delivery` → `delivered`.

Final states: `delivered`, `rejected`, `payment_failed`, `cancelled` (by the customer, before
picking starts). Follow the order with `GET /api/orders/{order_id}/` (polling every few seconds
is plenty), or, once it has a `shipment_id`, with the public `GET /api/tracking/{shipment_id}/`.

The address must be deliverable: name, e-mail, street, city, postal code (in the country's
format: Estonia's five digits) and country (`"Estonia"` or `"EE"`) are required. Send an
`Idempotency-Key` header to retry safely: the same key and body within {window} make one order.
`payment_method: "card_declined"` is a test value that is always declined.
"""
PLACE_ORDER_DESCRIPTION = PLACE_ORDER_DESCRIPTION.replace("{window}", WINDOW_TEXT)

SEED_ORDER_BODY = {
    "customer": {"name": "Jaan Tamm", "email": "jaan.tamm@example.com", "phone": "+372 5555 1234"},
    "shipping_address": {"street": "Narva mnt 5", "city": "Tallinn", "postal_code": "10117", "country": "Estonia"},
    "items": [{"product_id": "PRD001", "quantity": 1}, {"product_id": "PRD003", "quantity": 2}],
    "shipping_method": "express",
    "payment_method": "credit_card",
}

_ORDER_NEW = {
    "order_id": ORDER_ID,
    "status": "new",
    "customer": SEED_ORDER_BODY["customer"],
    "shipping_address": SEED_ORDER_BODY["shipping_address"],
    "shipping_method": "express",
    "payment_method": "credit_card",
    "items": [
        {"product_id": "PRD001", "name": "Laptop", "quantity": 1, "unit_price": "1299.99", "line_total": "1299.99"},
        {"product_id": "PRD003", "name": "Mechanical keyboard", "quantity": 2, "unit_price": "119.99",
         "line_total": "239.98"},
    ],
    "total": "1539.97",
    "currency": "EUR",
    "warehouse_confirmation": {"status": None, "message": None},
    "payment": {"status": None, "message": None, "reference": None},
    "shipment_id": None,
    "delivery_status": {"status": None, "message": None, "timestamp": None},
    "created_at": "2026-05-04T09:15:02.418Z",
    "updated_at": "2026-05-04T09:15:02.418Z",
}

_ORDER_DELIVERED = {
    **_ORDER_NEW,
    "status": "delivered",
    "warehouse_confirmation": {"status": "confirmed", "message": "All items reserved: 1 x PRD001, 2 x PRD003"},
    "payment": {"status": "captured", "message": "payment captured", "reference": "PAY-5E1A9C37D2"},
    "shipment_id": SHIPMENT_ID,
    "delivery_status": {"status": "delivered", "message": "Delivered to Narva mnt 5, Tallinn",
                        "timestamp": "2026-05-05T14:02:41.907Z"},
    "updated_at": "2026-05-05T14:02:42.113Z",
    "history": [
        {"status": "new", "note": "order placed", "at": "2026-05-04T09:15:02.418Z"},
        {"status": "confirmed", "note": "All items reserved: 1 x PRD001, 2 x PRD003", "at": "2026-05-04T09:15:02.652Z"},
        {"status": "paid", "note": "payment captured", "at": "2026-05-04T09:15:04.031Z"},
        {"status": "picked_up", "note": "Picked up by the courier", "at": "2026-05-04T13:40:10.220Z"},
        {"status": "in_transit", "note": "On its way", "at": "2026-05-04T15:02:55.006Z"},
        {"status": "out_for_delivery", "note": "Out for delivery", "at": "2026-05-05T08:31:17.540Z"},
        {"status": "delivered", "note": "Delivered to Narva mnt 5, Tallinn", "at": "2026-05-05T14:02:41.907Z"},
    ],
}

PLACE_ORDER_EXAMPLES = [
    OpenApiExample("The seed's order", value=SEED_ORDER_BODY, request_only=True,
                   description="Jaan Tamm's laptop and two keyboards, sent express to Tallinn."),
    OpenApiExample("Placed: new, the rest follows", value=_ORDER_NEW, response_only=True, status_codes=["201"]),
    OpenApiExample("An address that cannot be delivered", status_codes=["400"], response_only=True, value={
        "customer": {"email": ["This field is required."]},
        "shipping_address": {"postal_code": ["not a postal code of Estonia: five digits, e.g. 10117"]},
    }),
]

ORDER_EXAMPLES = [
    OpenApiExample("Delivered", value=_ORDER_DELIVERED, response_only=True, status_codes=["200"]),
]

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q


class Customer(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="customer")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """The catalogue: the only source of prices."""

    sku = models.CharField("product id", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2, validators=[MinValueValidator(Decimal("0"))])
    currency = models.CharField(max_length=3, default="EUR")
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["sku"]
        constraints = [models.CheckConstraint(condition=Q(price__gte=0), name="product_price_not_negative")]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


class OrderStatus(models.TextChoices):
    NEW = "new", "new"
    CONFIRMED = "confirmed", "confirmed"
    REJECTED = "rejected", "rejected"
    PAID = "paid", "paid"
    PAYMENT_FAILED = "payment_failed", "payment failed"
    PICKED_UP = "picked_up", "picked up"
    IN_TRANSIT = "in_transit", "in transit"
    OUT_FOR_DELIVERY = "out_for_delivery", "out for delivery"
    DELIVERED = "delivered", "delivered"
    CANCELLED = "cancelled", "cancelled"


# Status only moves forward: to a higher rank, never out of a final state.
STATUS_RANK: dict[str, int] = {
    OrderStatus.NEW: 0,
    OrderStatus.CONFIRMED: 1,
    OrderStatus.REJECTED: 1,
    OrderStatus.PAID: 2,
    OrderStatus.PAYMENT_FAILED: 2,
    OrderStatus.PICKED_UP: 3,
    OrderStatus.IN_TRANSIT: 4,
    OrderStatus.OUT_FOR_DELIVERY: 5,
    OrderStatus.DELIVERED: 6,
    OrderStatus.CANCELLED: 7,
}
FINAL_STATUSES = frozenset(
    {OrderStatus.DELIVERED, OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED, OrderStatus.CANCELLED})
# Picking starts the moment the shop hands a paid order to the warehouse: until then the
# customer may cancel.
CANCELLABLE_STATUSES = frozenset({OrderStatus.NEW, OrderStatus.CONFIRMED})


class Order(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    contact_name = models.CharField(max_length=200)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=40, blank=True)
    shipping_address = models.JSONField()
    shipping_method = models.CharField(max_length=32)
    payment_method = models.CharField(max_length=32)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.NEW)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    payment_status = models.CharField(max_length=20, blank=True)
    payment_message = models.TextField(blank=True)
    payment_reference = models.CharField(max_length=64, blank=True)
    payment_requests = models.PositiveIntegerField(default=0, help_text="payment requests sent (first + retries)")
    payment_due_at = models.DateTimeField(
        null=True, blank=True, help_text="when the shop stops waiting for payments' answer (confirmed orders only)")
    warehouse_status = models.CharField(max_length=20, blank=True)
    warehouse_message = models.TextField(blank=True)
    shipment_id = models.CharField(max_length=40, blank=True)
    delivery_status = models.CharField(max_length=30, blank=True)
    delivery_message = models.TextField(blank=True)
    delivery_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(total__gte=0), name="order_total_not_negative")]
        # staff read every order with view_order; cancelling a customer's order is its own permission
        permissions = [("cancel_order", "Can cancel an order for its customer")]
        # The payment clock's sweep reads only the orders still waiting for payments.
        indexes = [models.Index(fields=["payment_due_at"], name="order_payment_due_idx",
                                condition=Q(payment_due_at__isnull=False)),
                   # plain indexes: a CharField's db_index=True adds a LIKE index, maintained by every write
                   models.Index(fields=["status"], name="order_status_idx"),
                   models.Index(fields=["shipment_id"], name="order_shipment_idx")]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    sku = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=10, decimal_places=2,
                                     help_text="copied from the catalogue at order time")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="order_line_quantity_positive"),
            models.UniqueConstraint(fields=["order", "product"], name="order_line_product_once"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self) -> Decimal:
        return self.unit_price * self.quantity


class OrderStatusChange(models.Model):
    # no index of its own: the unique (order, status) below serves lookups by order
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="history", db_index=False)
    status = models.CharField(max_length=20, choices=OrderStatus.choices)
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["order", "status"], name="order_status_once")]

    def __str__(self) -> str:
        return f"{self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


class IdempotentRequest(models.Model):
    """The first answer to a request sent with an ``Idempotency-Key`` header, kept 24 hours.

    The row is inserted in the transaction that does the work, before it: a duplicate arriving
    meanwhile waits on the unique (user, key) until that transaction ends, then finds the row
    with its answer (or, if the work failed and rolled back, none, and does the work itself).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the operation and the canonical JSON body")
    # null only inside the transaction doing the work: committed rows always hold the answer
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotent_request_key_once")]

    def __str__(self) -> str:
        return f"{self.key} ({self.response_status})"

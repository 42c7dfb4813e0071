import uuid

from django.db import models
from django.db.models import Q


class StockItem(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    quantity_on_hand = models.IntegerField(default=0)
    location = models.CharField(max_length=50, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            # The last line of defence against overselling: the database itself refuses.
            models.CheckConstraint(condition=Q(quantity_on_hand__gte=0), name="stock_never_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.quantity_on_hand} at {self.location})"


class Reservation(models.Model):
    """The warehouse's answer to one order: all its lines reserved, or nothing."""

    class Status(models.TextChoices):
        RESERVED = "reserved", "reserved (awaiting payment)"
        REJECTED = "rejected", "rejected"
        PICKING = "picking", "picking (paid)"
        PICKED = "picked", "picked and handed to transport"
        RELEASED = "released", "released (stock returned)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    reason = models.TextField(blank=True)
    recipient = models.CharField(max_length=200, blank=True)
    shipping_address = models.JSONField(default=dict, blank=True)
    shipping_method = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    picked_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"reservation for {self.order_id} ({self.status})"


class ReservationLine(models.Model):
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    stock_item = models.ForeignKey(StockItem, on_delete=models.PROTECT, related_name="reservation_lines")
    quantity = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="reservation_line_quantity_positive"),
            models.UniqueConstraint(fields=["reservation", "stock_item"], name="reservation_line_item_once"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.stock_item.sku}"

import uuid

from django.db import models
from django.db.models import Q


class StockItem(models.Model):
    """One product on the shelves.

    ``quantity_on_hand`` (its name kept from the first version) is what is *left to sell*: the
    units held for orders (reserved or being picked, see ``selectors.stock_with_holds``) are
    already taken out of it. What stands on the shelf is the two together. It changes only
    through reservations and ``services.stock_adjust`` (a count, goods received, damage).
    """

    sku = models.CharField("product id", max_length=32, unique=True)
    name = models.CharField(max_length=200)
    quantity_on_hand = models.IntegerField(
        "available", default=0, help_text="Units left to sell: on the shelf minus those held for orders.")
    location = models.CharField("bin", max_length=50, db_index=True, help_text="The bin location, e.g. A-01-01.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        permissions = [("adjust_stockitem", "Can adjust stock (a count, goods received, damage)")]
        constraints = [
            # The last line of defence against overselling: the database itself refuses.
            models.CheckConstraint(condition=Q(quantity_on_hand__gte=0), name="stock_never_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name} (bin {self.location})"


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


class StockAdjustment(models.Model):
    """One change of a product's stock made by a person, with its reason: the stock's history.

    Written only by ``services.stock_adjust``, never edited or deleted.
    """

    class Reason(models.TextChoices):
        COUNTED = "counted", "counted (the shelf count, held units included)"
        RECEIVED = "received", "received (units added)"
        DAMAGED = "damaged", "damaged (units written off)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    stock_item = models.ForeignKey(StockItem, on_delete=models.PROTECT, related_name="adjustments")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    quantity = models.PositiveIntegerField(help_text="As entered: the units counted, received or damaged.")
    change = models.IntegerField(help_text="Units added to (or, negative, taken from) the stock.")
    on_hand_after = models.PositiveIntegerField("on hand after", help_text="Units on the shelf afterwards.")
    held = models.PositiveIntegerField(help_text="Units held for orders at the time.")
    available_after = models.PositiveIntegerField("available after", help_text="Units left to sell afterwards.")
    note = models.CharField(max_length=500, blank=True)
    made_by = models.CharField(max_length=150, blank=True, help_text="The staff member's username.")
    made_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-made_at"]
        constraints = [
            models.CheckConstraint(condition=Q(reason__in=["counted", "received", "damaged"]),
                                   name="stock_adjustment_reason_known"),
        ]

    def __str__(self) -> str:
        return f"{self.stock_item.sku} {self.reason} {self.change:+d}"

import uuid

from django.db import models
from django.db.models import Q


class Payment(models.Model):
    """One order's payment. Its amount is the order's catalogue total, never a client's figure."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending (with the provider)"
        CAPTURED = "captured", "captured"
        DECLINED = "declined", "declined"
        VOIDED = "voided", "voided before capture"
        REFUNDED = "refunded", "refunded"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    method = models.CharField(max_length=32)
    status = models.CharField(max_length=20, choices=Status.choices)
    provider_reference = models.CharField(max_length=64, blank=True)
    refund_reference = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="requests received for this payment")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_not_negative")]
        # plain indexes (a CharField's db_index=True adds a LIKE index, maintained by every write)
        indexes = [models.Index(fields=["status"], name="payment_status_idx"),
                   models.Index(fields=["method"], name="payment_method_idx")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} for {self.order_id} ({self.status})"

import uuid

from django.db import models
from django.db.models import Q


class Payment(models.Model):
    """One order's payment, charged for the amount the shop asked in ``payment.requested``.

    Its status only moves forward (``MOVES``): a late or repeated message finds it moved on
    and changes nothing. A cancellation that arrives before any request leaves a voided
    payment whose amount is not known (NULL), so that a late request charges nothing.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "pending (with the provider)"
        CAPTURED = "captured", "captured"
        DECLINED = "declined", "declined"
        VOIDED = "voided", "voided before capture"
        REFUNDED = "refunded", "refunded"

    # Every move a payment may make; any other would undo or repeat an effect.
    MOVES: dict[str, frozenset[str]] = {
        Status.PENDING: frozenset({Status.CAPTURED, Status.DECLINED, Status.VOIDED}),
        Status.CAPTURED: frozenset({Status.REFUNDED}),
    }

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(unique=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True,
                                 help_text="empty: voided before the shop asked for a charge")
    currency = models.CharField(max_length=3, blank=True)
    method = models.CharField(max_length=32, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    provider_reference = models.CharField(max_length=64, blank=True)
    refund_reference = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="requests received for this payment")
    charge_attempt = models.PositiveIntegerField(
        default=0, help_text="the charge asked of the provider (its idempotency key is <id>:<attempt>); 0: not asked")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    captured_at = models.DateTimeField(null=True, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_not_negative"),
            # only a payment voided before any request may lack an amount
            models.CheckConstraint(condition=Q(amount__isnull=False) | Q(status="voided"),
                                   name="payment_amount_known_unless_voided"),
        ]
        # plain indexes (a CharField's db_index=True adds a LIKE index, maintained by every write)
        indexes = [models.Index(fields=["status"], name="payment_status_idx"),
                   models.Index(fields=["method"], name="payment_method_idx")]

    def __str__(self) -> str:
        amount = "(amount unknown)" if self.amount is None else f"{self.amount} {self.currency}"
        return f"{amount} for {self.order_id} ({self.status})"

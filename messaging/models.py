import uuid

from django.db import models
from django.db.models import Q


class OutboxMessage(models.Model):
    """An event written in the same transaction as the state change it announces.

    The relay publishes unpublished rows in id order and sets ``published_at`` only
    after the broker confirmed the message. Which rows are unpublished it reads from
    ``OutboxPending``, which the database keeps in step with ``published_at``.
    """

    id = models.BigAutoField(primary_key=True)
    message_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    exchange = models.CharField(max_length=100, default="logistics",
                                help_text="logistics (point-to-point) or logistics.events (publish-subscribe)")
    queue = models.CharField(max_length=100,
                             help_text="routing key: the queue's name, or the event type on logistics.events")
    type = models.CharField(max_length=100)
    correlation_id = models.CharField(max_length=64, help_text="the order's id")
    causation_id = models.CharField(max_length=64, blank=True, default="", help_text="message id that caused this one")
    producer = models.CharField(max_length=50, blank=True, default="")
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # Not published before this time: a timer's due time, or when the relay tries again a row
    # the broker refused.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A timer (a scheduled message): when it was due. Empty for a message sent at once.
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        # No index may name published_at, not even in a predicate: the relay's mark is then a
        # HOT update (no new entry in any index), with room kept on each page for it
        # (fillfactor, migration 0006). The unpublished rows are listed in OutboxPending.
        indexes = [
            # A message's journey is looked up by its order. A plain index only: db_index=True
            # would add a second (LIKE) index that every insert and every publish maintains too.
            models.Index(fields=["correlation_id"], name="outbox_correlation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} -> {self.queue} ({self.message_id})"


class OutboxPending(models.Model):
    """The relay's work list: one row per outbox row not published yet.

    Kept by the database itself (triggers, migration 0006), whoever writes the outbox: a row
    inserted unpublished is listed here; setting its ``published_at`` (the relay's mark),
    deleting it or truncating the outbox takes it off. The relay leases (locks) these small
    rows, not the outbox's. Only the relay is meant to update unpublished outbox rows: any
    other writer waits for a lease on the row's entry to end, and if it had updated the row
    first, PostgreSQL ends the deadlock by aborting one side (a relay aborted after publishing
    sends the batch again; consumers absorb the duplicates).

    Before, a partial index on ``published_at IS NULL`` listed them; but a column an index
    names, even in its predicate, rules out HOT updates, so every mark added an entry to each
    of the outbox's indexes, and with a million published rows in the table (random message
    and order ids) the relay drained 14% slower than on an empty table.
    """

    outbox = models.OneToOneField(OutboxMessage, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                  related_name="pending")
    # When the row may go out: the outbox row's ``next_attempt_at`` (a timer's due time, a
    # refused row's retry), else its ``created_at``. The triggers always fill it in, so the
    # relay leases in this order (an index range: timers not due yet are never read) and
    # sleeps until the first entry's time.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at", "outbox"], name="outbox_pending_due_idx")]

    def __str__(self) -> str:
        return f"pending outbox row {self.outbox_id}"


class ProcessedMessage(models.Model):
    """Proof that a consumer has handled a message; written in the handler's transaction."""

    consumer = models.CharField(max_length=100)
    message_id = models.CharField(max_length=64)
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "message_id"], name="processed_message_once"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer}: {self.message_id}"


class DeadLetter(models.Model):
    """A message a consumer could not handle, parked with the reason."""

    class Reason(models.TextChoices):
        INVALID = "invalid", "invalid message"
        FAILED = "failed", "handler failed"
        RETRIES_EXHAUSTED = "retries_exhausted", "retries exhausted"

    queue = models.CharField(max_length=100, db_index=True)
    message_id = models.CharField(max_length=64, blank=True, default="")
    type = models.CharField(max_length=100, blank=True, default="")
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, default="")
    reason = models.CharField(max_length=30, choices=Reason.choices)
    error = models.TextField()
    attempts = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    redriven_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # A message redelivered after a lost ack is found parked, not parked twice.
            models.UniqueConstraint(fields=["queue", "message_id"], condition=~Q(message_id=""),
                                    name="dead_letter_once_per_message"),
        ]

    def __str__(self) -> str:
        return f"{self.queue}: {self.type or '?'} {self.message_id} ({self.reason})"

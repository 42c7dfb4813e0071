import uuid

from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone


class OutboxMessage(models.Model):
    """A message written in the same transaction as the state change it announces.

    The relay publishes the unpublished rows that are due (``next_attempt_at``) and sets
    ``published_at`` only after the broker confirmed the message.
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
    # Not published before this time: when it was written, a timer's due time, or when the
    # relay tries again a row the broker refused.
    next_attempt_at = models.DateTimeField(default=timezone.now, db_default=Now())
    # A timer (a scheduled message): when it was due. Empty for a message sent at once.
    due_at = models.DateTimeField(null=True, blank=True)
    # The W3C trace context of the span that wrote it (the request's, or the handler's that caused it).
    traceparent = models.CharField(max_length=55, blank=True, default="", db_default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            # The relay's work list: the unpublished rows in the order they are due. A lease
            # reads a range of it (timers not due yet are never read); its first entry tells an
            # idle relay when to wake up.
            models.Index(fields=["next_attempt_at", "id"], condition=Q(published_at__isnull=True),
                         name="outbox_due_idx"),
            # A message's journey is looked up by its order. A plain index only: db_index=True
            # would add a second (LIKE) index that every insert maintains too.
            models.Index(fields=["correlation_id"], name="outbox_correlation_idx"),
            # The audit reads what was published since its last run: a range of this index,
            # whatever the retained history (unpublished rows are not in it).
            models.Index(fields=["published_at", "id"], condition=Q(published_at__isnull=False),
                         name="outbox_published_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} -> {self.queue} ({self.message_id})"


class ProcessedMessage(models.Model):
    """Proof that a consumer has handled a message; written in the handler's transaction.

    ``message_created_at`` is when the message was written (its AMQP timestamp, whole seconds):
    the same for every delivery of one message, so on PostgreSQL, where the records are
    partitioned by it (``messaging.history``), a redelivery meets its first record in the same
    partition and the unique key (which must hold the partition key) still says "duplicate".
    """

    consumer = models.CharField(max_length=100)
    message_id = models.CharField(max_length=64)
    processed_at = models.DateTimeField(auto_now_add=True)
    message_created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["consumer", "message_id", "message_created_at"],
                                    name="processed_message_once"),
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


class DeadLetterChange(models.Model):
    """The trail of a dead letter: each edit of its payload and its re-drive, by whom and when."""

    class Action(models.TextChoices):
        EDITED = "edited", "payload edited"
        REDRIVEN = "redriven", "re-driven"

    dead_letter = models.ForeignKey(DeadLetter, on_delete=models.CASCADE, related_name="changes")
    action = models.CharField(max_length=20, choices=Action.choices)
    by = models.CharField(max_length=150, help_text="the staff member's username")
    at = models.DateTimeField(auto_now_add=True)
    body_before = models.TextField(blank=True, default="")
    body_after = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.by} at {self.at:%Y-%m-%d %H:%M:%S}"


class WorkerHeartbeat(models.Model):
    """A relay's or queue worker's sign of life, written by the process itself every few seconds."""

    class Kind(models.TextChoices):
        RELAY = "relay", "outbox relay"
        CONSUMER = "consumer", "queue worker"

    process = models.CharField(max_length=200, unique=True, help_text="host:pid:start time")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    queue = models.CharField(max_length=100, blank=True, default="", help_text="the queue a worker consumes")
    host = models.CharField(max_length=150)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(help_text="the last sign of life")
    last_message_at = models.DateTimeField(
        null=True, blank=True, help_text="a worker: the last message handled; the relay: the last published")
    messages = models.PositiveBigIntegerField(default=0, help_text="handled (worker) or published (relay) so far")
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="set when it stopped cleanly")

    class Meta:
        ordering = ["kind", "queue", "started_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.queue or ''} {self.process}".replace("  ", " ")


class HistoryWindow(models.Model):
    """The range of time the processed records' partitions cover (PostgreSQL; one row).

    The inbox insert keeps a message's partition key inside it: a message older than the
    oldest partition (a timer set before the retention, a message that waited in a queue for
    days) is recorded at ``oldest``, one with a timestamp beyond the partitions made at
    ``newest``. Both move only when housekeeping adds or drops partitions (``messaging.history``).
    """

    oldest = models.DateTimeField()
    newest = models.DateTimeField(help_text="the end (exclusive) of the newest partition")

    def __str__(self) -> str:
        return f"{self.oldest:%Y-%m-%d} .. {self.newest:%Y-%m-%d}"

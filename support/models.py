from django.db import models


class TrackingRecord(models.Model):
    """A shipment as customer service sees it. Holds no personal data: it is public by shipment id.

    ``status`` is the highest stage recorded (``contracts.stages.stage_rank``): it never goes back.
    """

    shipment_id = models.CharField(max_length=40)
    order_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=20)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        # a constraint, not unique=True, which would add a LIKE index that every new shipment maintains
        constraints = [models.UniqueConstraint(fields=["shipment_id"], name="tracking_record_shipment_once")]

    def __str__(self) -> str:
        return f"{self.shipment_id} ({self.status})"


class TrackingEntry(models.Model):
    # no index of its own: the unique (record, status) below serves lookups by record
    record = models.ForeignKey(TrackingRecord, on_delete=models.CASCADE, related_name="entries", db_index=False)
    status = models.CharField(max_length=20)
    message = models.CharField(max_length=300)
    timestamp = models.DateTimeField(help_text="when it happened, by transport's clock")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [models.UniqueConstraint(fields=["record", "status"], name="tracking_entry_stage_once")]

    def __str__(self) -> str:
        return f"{self.status} at {self.timestamp:%H:%M:%S}"


class CustomerNotification(models.Model):
    """What customer service tells the customer: one per order and event (``status``: received,
    paid, rejected, cancelled, payment_failed, or a shipment stage that is mailed).

    Written in the transaction of the event it tells about and mailed right after that
    transaction commits (``support.services.notifications_send_now``, on commit, in the worker
    that wrote it); qcluster's schedule (``support.tasks``) is the backstop for what that missed
    and for retries. A mail outbox: a slow or failing mail server never holds up the flow, a
    failed mail is tried again, and a mailed row is marked so it is mailed once. One written
    before the order's contact arrived has no recipient (and is not mailed) until the contact
    fills it in (``support.services.customer_contact_record``). Subject and body are rendered
    when it is mailed, in the customer's language, and kept as mailed.
    """

    order_id = models.UUIDField()  # the unique (order_id, status) below serves lookups by order
    shipment_id = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=20)
    recipient = models.EmailField(blank=True)
    subject = models.CharField(max_length=200)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0, help_text="failed attempts to mail it so far")
    next_send_at = models.DateTimeField(null=True, blank=True, help_text="after a failed attempt: not before then")
    last_send_error = models.TextField(blank=True, default="")
    # what the mail tells beyond its kind: {"message", "timestamp", "unavailable": [...]}
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["order_id", "status"], name="notification_stage_once")]
        indexes = [
            # what the sender looks at on every tick: the few notifications not mailed yet
            models.Index(fields=["id"], name="notification_unsent_idx", condition=models.Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.subject} -> {self.recipient or '(no email)'}"


class CustomerContact(models.Model):
    """Customer service's own copy of whom to tell about an order, from ``order.placed``.

    Messages on different queues arrive in any order: a stage or an outcome to tell about may
    come before the order's contact. It then writes this row empty (``received_at`` unset), and
    the contact, when it arrives, fills it in together with the recipient of the order's
    notifications not mailed yet. Either side locks the row first, so neither misses the other.
    """

    order_id = models.UUIDField(unique=True)
    name = models.CharField(max_length=200, blank=True)  # as the order gave it: greets, cleaned
    email = models.EmailField(blank=True, help_text="the account's own address: the only one mailed")
    received_at = models.DateTimeField(null=True, blank=True, help_text="when the order's contact arrived")
    # what the order holds, for the mails: {"lines": [{"product_id", "name", "quantity"}], "total", "currency"}
    order_summary = models.JSONField(default=dict, blank=True)
    # the language the customer's mails are written in (settings.LANGUAGES), and the order's
    # shipping method (for the expected delivery window)
    language = models.CharField(max_length=16, blank=True)
    shipping_method = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.name or '(not known yet)'} <{self.email}> for {self.order_id}"

    @property
    def known(self) -> bool:
        return self.received_at is not None

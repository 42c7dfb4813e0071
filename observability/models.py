from django.db import models


class AuditRun(models.Model):
    """One run of the audit (``manage.py audit`` or its schedule): what it checked and found."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    grace_seconds = models.FloatField()
    messages = models.PositiveIntegerField(help_text="published outbox messages checked")
    deliveries = models.PositiveIntegerField(help_text="(message, queue) deliveries checked")
    gap_count = models.PositiveIntegerField()
    gaps = models.JSONField(default=list, blank=True, help_text="the first gaps found (message, type, order, queue)")
    resent = models.PositiveIntegerField(default=0, help_text="messages sent again (--repair)")
    stalled_order_count = models.PositiveIntegerField(default=0)
    stalled_orders = models.JSONField(default=list, blank=True,
                                      help_text="the first orders stuck in a non-final status")
    full = models.BooleanField(default=False, help_text="checked everything retained (--full), not only what is new")
    watermark = models.DateTimeField(null=True, blank=True,
                                     help_text="every message published up to here is checked; the next run "
                                               "starts here")
    open_gaps = models.JSONField(default=list, blank=True,
                                 help_text="every gap as [outbox id, queue]: the next run checks them again")

    class Meta:
        ordering = ["-id"]
        get_latest_by = "id"

    def __str__(self) -> str:
        return f"audit {self.finished_at:%Y-%m-%d %H:%M:%S}: {self.gap_count} gap(s)"

from django.contrib import admin

from config.admin_readonly import ReadOnlyAdmin
from observability.models import AuditRun


@admin.register(AuditRun)
class AuditRunAdmin(ReadOnlyAdmin):
    """What each audit found (``manage.py audit`` and its schedule); written by the audit only."""

    list_display = ("finished_at", "gap_count", "stalled_order_count", "resent", "messages", "deliveries")
    date_hierarchy = "finished_at"

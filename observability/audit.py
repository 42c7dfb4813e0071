"""The operator's audit: the messaging gaps (``messaging.audit``) and the orders stuck on the way,
recorded as an ``AuditRun`` that the dashboard and /metrics show."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from messaging.audit import deliveries_resend, deliveries_unaccounted
from observability.models import AuditRun
from shop.models import FINAL_STATUSES, Order

# How many gaps and stalled orders a run keeps for the dashboard (all are printed by the command).
KEPT = 50


def orders_stalled(*, older_than: timedelta, now=None) -> list[Order]:
    """Orders in a non-final status that nothing has moved for longer than ``older_than``, oldest first."""
    now = now or timezone.now()
    return list(Order.objects.exclude(status__in=FINAL_STATUSES).filter(updated_at__lt=now - older_than)
                .order_by("updated_at"))


def audit_run(*, grace: timedelta, repair: bool = False, full: bool = False) -> tuple[AuditRun, list, list[Order]]:
    """Run the audit (and send the missing deliveries again when ``repair``); record and return it
    with every gap and stalled order found.

    Incremental: it checks what was published since the last run's watermark and the gaps
    that run left open; the first run, or ``full``, checks every message retained.
    """
    started = timezone.now()
    previous = None if full else AuditRun.objects.filter(watermark__isnull=False).order_by("-id").first()
    findings = deliveries_unaccounted(
        grace=grace, now=started, since=previous.watermark if previous else None,
        reopen=[(outbox_id, queue) for outbox_id, queue in previous.open_gaps] if previous else ())
    resent = deliveries_resend(findings.gaps) if repair and findings.gaps else 0
    stalled = orders_stalled(older_than=timedelta(minutes=settings.AUDIT_ORDER_STALLED_MINUTES), now=started)
    run = AuditRun.objects.create(
        started_at=started, finished_at=timezone.now(), grace_seconds=grace.total_seconds(),
        messages=findings.messages, deliveries=findings.deliveries, gap_count=len(findings.gaps),
        gaps=[{"message_id": g.message_id, "type": g.type, "order_id": g.order_id, "queue": g.queue,
               "age_seconds": round(g.age_seconds(started))} for g in findings.gaps[:KEPT]],
        resent=resent, stalled_order_count=len(stalled),
        stalled_orders=[{"order_id": str(o.pk), "status": o.status, "since": o.updated_at.isoformat()}
                        for o in stalled[:KEPT]],
        full=previous is None, watermark=findings.watermark,
        open_gaps=[[gap.outbox_id, gap.queue] for gap in findings.gaps],
    )
    return run, findings.gaps, stalled


def audit_scheduled() -> int:
    """The django-q2 schedule's task: audit, report, repair nothing (repairing is a person's call)."""
    run, _, _ = audit_run(grace=timedelta(seconds=settings.AUDIT_GRACE_SECONDS))
    AuditRun.objects.filter(finished_at__lt=run.finished_at - timedelta(days=settings.OUTBOX_RETENTION_DAYS)).delete()
    return run.gap_count

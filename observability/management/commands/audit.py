"""manage.py audit [--grace SECONDS] [--repair] [--full]"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.audit import gaps_describe
from observability.audit import audit_run


class Command(BaseCommand):
    help = ("Check that every published message was handled or parked by each queue it reached; "
            "list each gap and exit 1 when there is one. --repair sends exactly the missing ones again.")

    def add_arguments(self, parser):
        parser.add_argument("--grace", type=float, default=None,
                            help=f"ignore messages published less than this many seconds ago "
                                 f"(default {settings.AUDIT_GRACE_SECONDS:g})")
        parser.add_argument("--repair", action="store_true", help="send each missing delivery again")
        parser.add_argument("--full", action="store_true",
                            help="check every message retained, not only what was published since the last run "
                                 "(and the gaps it left open)")

    def handle(self, *args, grace: float | None, repair: bool, full: bool = False, **options):
        grace = settings.AUDIT_GRACE_SECONDS if grace is None else grace
        if grace < 0:
            raise CommandError("--grace must be 0 or more seconds")
        run, gaps, stalled = audit_run(grace=timedelta(seconds=grace), repair=repair, full=full)
        for line in gaps_describe(gaps, now=run.started_at):
            self.stdout.write(f"gap: {line}")
        for order in stalled:
            self.stdout.write(f"stalled: order={order.pk} status={order.status} "
                              f"since={order.updated_at:%Y-%m-%d %H:%M:%S}")
        scope = "everything retained" if run.full else "new since the last run"
        self.stdout.write(f"audit ({scope}): {run.messages} messages, {run.deliveries} deliveries checked; "
                          f"{run.gap_count} gap(s); {run.stalled_order_count} stalled order(s)"
                          + (f"; {run.resent} message(s) sent again" if repair else ""))
        if gaps:  # also after a repair: there were gaps (run it again to see them gone)
            raise SystemExit(1)

"""Recovery of timed steps lost to a crash (run every minute by qcluster)."""

from django.conf import settings

from transport.services import shipments_overdue_resume
from warehouse.services import picking_overdue_reschedule

GRACE_SECONDS = 60


def stalled_steps_resume() -> dict[str, int]:
    scale = settings.SIM_TIME_SCALE
    picking = picking_overdue_reschedule(older_than_seconds=settings.SIM_PICKING_SECONDS * scale + GRACE_SECONDS)
    shipments = shipments_overdue_resume(older_than_seconds=settings.SIM_STAGE_SECONDS[1] * scale + GRACE_SECONDS)
    return {"picking": picking, "shipments": shipments}

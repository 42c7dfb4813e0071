"""Periodic housekeeping as django-q2 schedules, run by the stock ``manage.py qcluster``.

Each app names its own in its ``AppConfig.ready`` (``schedules_on_migrate``: name, task and
period); they are written after every ``migrate`` of the app (post_migrate), so a deployment
has them without a step of its own. Timed steps of the order flow are not schedules but
timers (``messaging.timers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


@dataclass(frozen=True)
class Housekeeping:
    name: str
    func: str
    minutes: int  # run every this many minutes


def schedules_ensure(jobs: list[Housekeeping]) -> None:
    from django_q.models import Schedule

    for job in jobs:
        Schedule.objects.update_or_create(
            name=job.name,
            defaults={"func": job.func, "schedule_type": Schedule.MINUTES, "minutes": job.minutes, "repeats": -1},
        )


def schedules_on_migrate(app: AppConfig, *jobs: Housekeeping) -> None:
    """Write ``jobs`` after every ``migrate`` of ``app`` (call it from the app's ``ready``)."""

    def ensure(sender: AppConfig, **kwargs: Any) -> None:
        schedules_ensure(list(jobs))

    post_migrate.connect(ensure, sender=app, weak=False, dispatch_uid=f"schedules:{app.label}")

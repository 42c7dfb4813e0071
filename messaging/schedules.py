"""Periodic housekeeping as django-q2 schedules, run by the stock ``manage.py qcluster``.

Each app lists its own in ``HOUSEKEEPING`` (name -> task and period); they are written after
every ``migrate`` (post_migrate), so a deployment has them without a step of its own.
Timed steps of the order flow are not schedules but timers (``messaging.timers``).
"""

from __future__ import annotations

from dataclasses import dataclass


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

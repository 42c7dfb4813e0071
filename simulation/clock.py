"""Timed simulation steps as scheduled work (django-q2, ORM broker), never sleeping threads.

``step_schedule()`` writes the task into the database in the caller's transaction, so a
step is scheduled if and only if the state change that asks for it commits.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task


def sim_seconds(seconds: float) -> float:
    """A simulated delay in real seconds (SIM_TIME_SCALE=0 makes every delay instant)."""
    return seconds * settings.SIM_TIME_SCALE


def picking_delay() -> float:
    return sim_seconds(settings.SIM_PICKING_SECONDS)


def stage_delay() -> float:
    low, high = settings.SIM_STAGE_SECONDS
    return sim_seconds(random.uniform(low, high))


def step_schedule(func: str, *args: str, delay_seconds: float) -> None:
    """Run ``func(*args)`` after ``delay_seconds`` on the qcluster workers. Args are strings."""
    if delay_seconds <= 0:
        async_task(func, *(str(a) for a in args))
        return
    Schedule.objects.create(
        func=func,
        args=repr(tuple(str(a) for a in args)),
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() + timedelta(seconds=delay_seconds),
    )

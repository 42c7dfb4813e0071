"""Timed simulation steps as scheduled work (django-q2, ORM broker), never sleeping threads.

``step_schedule()`` writes the task into the database in the caller's transaction, so a
step is scheduled if and only if the state change that asks for it commits.

A step with no delay (SIM_TIME_SCALE=0: "instant") runs right away, in the caller's
transaction, after the step that asked for it -- one after the other, never nested, so a
chain of instant steps (a shipment's whole lifecycle) is one loop, not a deep recursion.
It commits or rolls back with the change that caused it, exactly like a scheduled one.
"""

from __future__ import annotations

import functools
import random
import threading
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import Schedule

_instant = threading.local()


def sim_seconds(seconds: float) -> float:
    """A simulated delay in real seconds (SIM_TIME_SCALE=0 makes every delay instant)."""
    return seconds * settings.SIM_TIME_SCALE


def picking_delay() -> float:
    return sim_seconds(settings.SIM_PICKING_SECONDS)


def stage_delay() -> float:
    low, high = settings.SIM_STAGE_SECONDS
    return sim_seconds(random.uniform(low, high))


def step_schedule(func: str, *args: str, delay_seconds: float, instant: Callable[[], object] | None = None) -> None:
    """Run ``func(*args)`` after ``delay_seconds`` on the qcluster workers (now, if no delay).

    Caller holds the transaction of the change that asks for the step. Args are strings.
    ``instant``, when given, is what runs instead of ``func(*args)`` when there is no delay:
    the same step, carried on with what the caller already holds in this transaction (the
    row it locked, say) instead of reading it all again by id.
    """
    args = tuple(str(a) for a in args)
    if delay_seconds <= 0:
        _instant_step_run(instant or functools.partial(import_string(func), *args))
        return
    Schedule.objects.create(
        func=func,
        args=repr(args),
        schedule_type=Schedule.ONCE,
        repeats=-1,
        next_run=timezone.now() + timedelta(seconds=delay_seconds),
    )


def _instant_step_run(step: Callable[[], object]) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("step_schedule() must run inside the transaction of the change that asks for the step")
    pending = getattr(_instant, "pending", None)
    if pending is not None:  # a step is running: this one follows it
        pending.append(step)
        return
    _instant.pending = deque([step])
    try:
        while _instant.pending:
            _instant.pending.popleft()()
    finally:
        _instant.pending = None

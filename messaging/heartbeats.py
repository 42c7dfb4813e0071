"""Every relay and queue worker says it is alive: a ``WorkerHeartbeat`` row it updates itself.

``Heartbeat.beat()`` is called from the process's own loop (a worker's after each delivery and
each idle quarter second, the relay's after each drain and wait), and writes at most every
``WORKER_HEARTBEAT_SECONDS``: a process whose loop is stuck stops beating, as a dead one does.
The dashboard marks a process silent after ``WORKER_SILENT_SECONDS`` without a beat and
/metrics counts the live ones per queue. A clean stop (SIGTERM) is recorded as such.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from messaging.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, *, kind: str, queue: str = "") -> None:
        self.kind, self.queue = kind, queue
        self.started_at = timezone.now()
        self.host, self.pid = socket.gethostname()[:150], os.getpid()
        # one row per queue: a worker process consuming several queues beats for each
        self.process = (f"{self.host[:100]}:{self.pid}:{self.started_at:%Y%m%dT%H%M%S.%f}"
                        + (f":{queue}" if queue else ""))[:200]
        self._next_beat = 0.0  # monotonic
        self._messages = 0
        self._last_message_at: datetime | None = None

    def counted(self, messages: int) -> None:
        """``messages`` handled (a worker) or published (the relay) just now."""
        if messages:
            self._messages += messages
            self._last_message_at = timezone.now()

    def beat(self, *, force: bool = False) -> None:
        """Write the sign of life when one is due (or ``force``). Never raises: a database that
        is away is the loop's business, and a missing beat is exactly what shows it."""
        now = time.monotonic()
        if not force and now < self._next_beat:
            return
        self._next_beat = now + settings.WORKER_HEARTBEAT_SECONDS
        try:
            self._write(stopped=False)
        except DatabaseError as exc:
            logger.warning("heartbeat not written (%r)", exc)

    def stopped(self) -> None:
        try:
            self._write(stopped=True)
        except DatabaseError as exc:
            logger.warning("stop not recorded (%r)", exc)

    def _write(self, *, stopped: bool) -> None:
        now = timezone.now()
        fields = {"beat_at": now, "messages": self._messages, "last_message_at": self._last_message_at,
                  "stopped_at": now if stopped else None}
        if not WorkerHeartbeat.objects.filter(process=self.process).update(**fields):
            WorkerHeartbeat.objects.create(process=self.process, kind=self.kind, queue=self.queue, host=self.host,
                                           pid=self.pid, started_at=self.started_at, **fields)


def heartbeats_recent(*, now: datetime, forget_after: timedelta = timedelta(hours=1)) -> list[WorkerHeartbeat]:
    """The processes seen within ``forget_after``: live, silent or stopped."""
    return list(WorkerHeartbeat.objects.filter(beat_at__gte=now - forget_after))


def is_silent(heartbeat: WorkerHeartbeat, *, now: datetime) -> bool:
    return heartbeat.stopped_at is None and (now - heartbeat.beat_at).total_seconds() > settings.WORKER_SILENT_SECONDS


def heartbeats_prune(*, older_than: timedelta) -> int:
    return WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - older_than).delete()[0]

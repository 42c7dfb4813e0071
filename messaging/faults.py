"""Fault injection for the fault tests: crash this process hard at a named point.

Off unless FAULT_INJECTION names the point, e.g.
``FAULT_INJECTION="consumer.after_commit=0.2,relay.after_publish=0.5"`` (probability per pass).
The crash is SIGKILL on ourselves: no cleanup, no acks, no rollback hooks -- exactly kill -9.
"""

from __future__ import annotations

import os
import random
import signal

from django.conf import settings


def fault_point(name: str) -> None:
    probability = settings.FAULT_INJECTION.get(name)
    if probability and random.random() < probability:  # noqa: S311 - picks a fault to inject, not a secret
        os.kill(os.getpid(), signal.SIGKILL)

"""Per-user throttles whose rates are read from settings when used (so tests and benchmarks can set them).

The request history of each throttle key is shared by every web worker process and thread.
DRF keeps it in Django's cache, and the file-based cache that production uses made every
allowed request pay for a pickled, compressed history written to a temporary file and
renamed, plus a listing of the whole cache folder (its cull check), with no lock between the
read and the write (concurrent requests lost each other's counts). Here each key's history is
one small file of timestamps, read and rewritten under an exclusive ``flock`` -- one open,
lock, read, write and close, and counts are never lost. The files live in
``settings.API_THROTTLE_DIR`` (beside the web workers' file cache; a folder per test run).
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import os
import time
from array import array
from pathlib import Path

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from config.client_address import client_key

# Histories untouched for longer than the longest period DRF knows (a day) are empty: a
# process removes them after every PRUNE_EVERY writes, as the file cache culled its entries.
LONGEST_PERIOD_SECONDS = 86400
PRUNE_EVERY = 1000


def history_folder() -> Path:
    """Where the histories live (made on first use)."""
    return Path(settings.API_THROTTLE_DIR)


def history_count(key: str, *, now: float, duration: int, limit: int) -> tuple[bool, list[float]]:
    """Count a request made at ``now`` for ``key`` unless ``limit`` requests were counted in the
    ``duration`` seconds before it: DRF's sliding window. Returns (counted, the history before
    this request, newest first)."""
    folder = history_folder()
    path = folder / hashlib.blake2b(key.encode(), digest_size=16).hexdigest()
    fd = _open_locked(folder, path)
    try:
        raw = os.pread(fd, os.fstat(fd).st_size, 0)
        history = array("d")
        history.frombytes(raw[: len(raw) - len(raw) % history.itemsize])  # a torn write loses its tail only
        while history and history[-1] <= now - duration:
            history.pop()
        before = history.tolist()
        counted = len(history) < limit
        if counted:
            history.insert(0, now)
            data = history.tobytes()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
    finally:
        os.close(fd)  # releases the lock
    if counted:
        _written(folder)
    return counted, before


def _open_locked(folder: Path, path: Path) -> int:
    """Open and lock the key's file; a file that a prune unlinked meanwhile is opened anew."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            folder.mkdir(parents=True, exist_ok=True)
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:
            return fd
        os.close(fd)


_writes = itertools.count(1)


def _written(folder: Path) -> None:
    if next(_writes) % PRUNE_EVERY == 0:
        histories_prune(folder, before=time.time() - LONGEST_PERIOD_SECONDS,
                        keep_at_most=settings.API_THROTTLE_MAX_HISTORIES)


def histories_prune(folder: Path, *, before: float, keep_at_most: int | None = None) -> int:
    """Remove the histories last written before ``before``, then, while more than
    ``keep_at_most`` are left, the least recently written ones: the folder stays bounded
    whatever clients send (each process prunes after every PRUNE_EVERY writes, so it holds at
    most ``keep_at_most`` plus that many per process). Returns how many were removed. Each is
    locked first, so a request counting in it meanwhile keeps its file."""
    removed = 0
    kept: list[tuple[float, str]] = []
    for entry in os.scandir(folder):
        try:
            mtime = entry.stat().st_mtime
        except FileNotFoundError:
            continue  # pruned by another process
        if mtime < before:
            removed += _history_remove(entry.path, before=before)
        else:
            kept.append((mtime, entry.path))
    if keep_at_most is not None and len(kept) > keep_at_most:
        kept.sort()
        for _mtime, path in kept[: len(kept) - keep_at_most]:
            removed += _history_remove(path, before=float("inf"))
    return removed


def _history_remove(path: str, *, before: float) -> int:
    """Unlink the history at ``path`` if it was last written before ``before`` (1), else 0."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stat = os.fstat(fd)
        if stat.st_nlink and stat.st_mtime < before:
            os.unlink(path)
            return 1
        return 0
    finally:
        os.close(fd)


class _SharedHistoryThrottle(SimpleRateThrottle):
    """DRF's sliding window with rates from settings and histories from ``history_count``;
    anonymous clients are counted by ``config.client_address.client_key``."""

    def get_ident(self, request):
        return client_key(request)

    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        counted, self.history = history_count(self.key, now=self.now, duration=self.duration, limit=self.num_requests)
        return counted


class UserThrottle(_SharedHistoryThrottle, UserRateThrottle):
    scope = "user"


class AnonThrottle(_SharedHistoryThrottle, AnonRateThrottle):
    scope = "anon"


class OrderPlacementThrottle(_SharedHistoryThrottle, UserRateThrottle):
    """Placing orders has its own, tighter budget per user."""

    scope = "orders"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


class LoginThrottle(_SharedHistoryThrottle, AnonRateThrottle):
    """Password logins through the API, per client address (authenticated or not)."""

    scope = "login"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def login_budget_spend(request) -> int | None:
    """Count one password login attempt from the request's client address against the login
    budget (``API_THROTTLE_RATES["login"]``) that ``POST /api/auth/token/`` spends too. Returns
    None when the attempt may go ahead, else the seconds until the budget has room again."""
    throttle = LoginThrottle()
    if throttle.allow_request(request, None):
        return None
    wait = throttle.wait()
    return max(1, round(wait)) if wait is not None else 1

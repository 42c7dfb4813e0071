"""The API's request budgets (DRF throttles), counted where every web process sees them.

With ``settings.REDIS_URL`` every budget is counted in Redis by the ``limits`` library: its
moving window is one Lua script per request (drop what left the window, count, record),
which Redis runs atomically, so every web node of a deployment shares one count and
concurrent requests on several nodes never let more through than the limit. DRF's own cache
throttles read and then write, and overshoot under concurrency (DRF #5181).

When Redis does not answer, requests go on unlimited rather than failing: each such request is
counted (``logistics_request_limits_unchecked_total`` on /metrics), the first one logged, and
Redis is not asked again for ``REDIS_RETRY_SECONDS`` (no request waits for a dead Redis).

Without ``REDIS_URL`` (one machine: ``make run``, ``make demo``) each key's history is one
small file of timestamps in ``settings.API_THROTTLE_DIR``, read and rewritten under an
exclusive ``flock``: shared by every web process and thread of the machine, no count lost.
(The file-based Django cache that this replaced had no lock between its read and its write.)
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import logging
import os
import threading
import time
from array import array
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.utils.module_loading import import_string
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from config.client_address import client_key

logger = logging.getLogger("config.throttling")

# --- without Redis: one machine's files -----------------------------------------------------------
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


# --- Redis: every web node's counts in one place ------------------------------------------------
class SharedWindow:
    """The moving windows of one Redis (``limits``' storage and strategy), and whether it answers."""

    def __init__(self, url: str, *, prefix: str, timeout: float) -> None:
        # One try per request, bounded: a Redis that is away costs a request at most ``timeout``.
        self.storage = RedisStorage(url, key_prefix=prefix, wrap_exceptions=True, socket_timeout=timeout,
                                    socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0))  # type: ignore[arg-type]  # redis takes it
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.away_until = 0.0  # time.monotonic() before which Redis is not asked
        self._lock = threading.Lock()

    def count(self, key: str, *, limit: int, duration: int) -> tuple[bool, float | None]:
        """Count a request for ``key`` unless ``limit`` were counted in the last ``duration``
        seconds. Returns (counted, the oldest request in the window when refused); raises
        StorageError when Redis does not answer."""
        item = RateLimitItemPerSecond(limit, duration)
        if self.limiter.hit(item, key):
            return True, None
        oldest, _ = self.storage.get_moving_window(item.key_for(key), limit, duration)
        return False, oldest or None

    def away(self, exc: Exception, *, retry_in: float) -> None:
        with self._lock:
            first = time.monotonic() >= self.away_until
            self.away_until = time.monotonic() + retry_in
        if first:
            logger.warning("request limits unchecked: Redis does not answer (%s); asking again in %.0fs",
                           exc, retry_in)


@lru_cache(maxsize=4)
def shared_window(url: str, prefix: str) -> SharedWindow:
    """One per process and Redis (its connections are pooled and thread-safe)."""
    return SharedWindow(url, prefix=prefix, timeout=settings.REDIS_TIMEOUT_SECONDS)


def _unchecked(scope: str) -> None:
    """Tell the metrics (settings.REQUEST_LIMITS_UNCHECKED_CALLABLE: config imports no app)."""
    import_string(settings.REQUEST_LIMITS_UNCHECKED_CALLABLE)(scope=scope)


# --- the throttles -----------------------------------------------------------------------------
class _SharedHistoryThrottle(SimpleRateThrottle):
    """DRF's sliding window with rates from settings, counted in Redis (REDIS_URL) or in this
    machine's history files; anonymous clients are counted by ``config.client_address.client_key``."""

    scope: str  # every throttle below names its own
    num_requests: int  # set from the rate by SimpleRateThrottle.__init__
    duration: int

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
        self.oldest = None
        if settings.REDIS_URL:
            return self._count_shared(settings.REDIS_URL, self.key)
        counted, history = history_count(self.key, now=self.now, duration=self.duration, limit=self.num_requests)
        if not counted and history:
            self.oldest = history[-1]
        return counted

    def _count_shared(self, url: str, key: str) -> bool:
        window = shared_window(url, settings.API_THROTTLE_REDIS_PREFIX)
        if time.monotonic() < window.away_until:
            _unchecked(self.scope)
            return True
        try:
            counted, self.oldest = window.count(key, limit=self.num_requests, duration=self.duration)
        except StorageError as exc:  # the shop does not go down with its limiter
            window.away(exc.storage_error, retry_in=settings.REDIS_RETRY_SECONDS)
            _unchecked(self.scope)
            return True
        return counted

    def wait(self):
        """Seconds until the oldest request in the window leaves it (Retry-After)."""
        if self.oldest is None:
            return self.duration
        return max(0.0, self.duration - (self.now - self.oldest))


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

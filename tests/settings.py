"""Settings for the test suite: the production settings, plus what a test run needs.

pytest.ini names this module; the processes the tests start (tests/harness.py) inherit it
through DJANGO_SETTINGS_MODULE.
"""

import os

# The tests run the demo's world (simulated actors, the simulated payment provider), as the
# Makefile's demo does; the processes they start inherit it. A test of the product's defaults
# reads config.settings in a process of its own.
os.environ.setdefault("SIM_ACTORS", "1")
os.environ.setdefault("PAYMENT_PROVIDER", "simulated")

from config.settings import *  # noqa: F403
from config.settings import BASE_DIR, SQLITE_OPTIONS

RUN_DIR = BASE_DIR / ".run"

# Django's test client sends "Host: testserver".
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405

# Each process counts its own requests (a test run never shares throttle histories with a
# running `make run`, nor with an earlier run).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
API_THROTTLE_DIR = str(RUN_DIR / "throttle-test" / str(os.getpid()))

# A test session counts metrics into a folder of its own, shared with the worker processes it
# starts (tests/conftest.py hands it to them; they read it back here).
PROMETHEUS_MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or str(
    RUN_DIR / "prometheus-test" / str(os.getpid()))

# A second database, SQLite, whatever "default" is: messaging/ runs its hand-written SQL on
# both engines, and its tests run each statement on this one too. Both files are under .run/
# (the test database is a file so that every connection of a test sees the same data).
DATABASES = {
    **DATABASES,  # noqa: F405
    "sqlite": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(RUN_DIR / "sqlite.sqlite3"),
        "OPTIONS": dict(SQLITE_OPTIONS),
        "TEST": {"NAME": str(RUN_DIR / f"test-sqlite-{os.getpid()}.sqlite3")},
    },
}

# Request limits counted in Redis (when make test gives a REDIS_URL) carry a prefix of this run's
# own, shared with the web processes the tests start (tests/conftest.py hands it to them).
API_THROTTLE_REDIS_PREFIX = os.environ.get("API_THROTTLE_REDIS_PREFIX") or f"logistics-test-{os.getpid()}:limits"

# Passwords hashed fast: the tests sign in and make accounts with passwords hundreds of times, and
# PBKDF2's million rounds (production's hasher) took most of their time; no test is about the hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

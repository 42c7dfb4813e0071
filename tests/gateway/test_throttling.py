"""Throttle histories: shared by every worker process and thread through locked files."""

import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from config import throttling
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db

FILE_CACHE = "django.core.cache.backends.filebased.FileBasedCache"


@pytest.fixture
def file_cache(settings, tmp_path):
    """The production layout: a file cache that every web worker shares."""
    settings.CACHES = {"default": {"BACKEND": FILE_CACHE, "LOCATION": str(tmp_path / "cache")}}
    return tmp_path / "cache"


def _count_many(key: str, attempts: int) -> int:
    return sum(throttling.history_count(key, now=time.time(), duration=60, limit=100)[0] for _ in range(attempts))


def test_histories_live_beside_the_file_cache(file_cache, make_customer):
    # given
    _, client = make_customer("alice")
    # when
    assert client.get("/api/orders/").status_code == 200
    # then: one history, for the user scope (reading is not an order placement)
    assert throttling.history_folder() == file_cache / "throttle"
    assert len(os.listdir(file_cache / "throttle")) == 1


def test_no_count_is_lost_between_threads_and_processes(file_cache):
    # given: 4 processes of 4 threads, 40 attempts each, for one key allowing 100 a minute
    fork = multiprocessing.get_context("fork")
    # when
    with fork.Pool(4) as pool:
        counted = sum(pool.starmap(_threads_count, [("throttle_user_1",)] * 4))
    # then: exactly the limit got through, and the history holds exactly that
    assert counted == 100
    assert throttling.history_count("throttle_user_1", now=time.time(), duration=60, limit=100)[0] is False


def _threads_count(key: str) -> int:
    with ThreadPoolExecutor(4) as threads:
        return sum(threads.map(_count_many, [key] * 4, [40] * 4))


def test_the_window_slides_and_the_history_is_newest_first(file_cache):
    count = throttling.history_count
    assert count("k", now=1000.0, duration=60, limit=2) == (True, [])
    assert count("k", now=1010.0, duration=60, limit=2) == (True, [1000.0])
    assert count("k", now=1059.0, duration=60, limit=2) == (False, [1010.0, 1000.0])
    assert count("k", now=1060.0, duration=60, limit=2) == (True, [1010.0])  # 1000 left the window
    assert count("other", now=1060.0, duration=60, limit=2) == (True, [])


def test_prune_removes_only_histories_idle_since_the_cutoff(file_cache):
    # given: one history last written long ago, one just now
    throttling.history_count("idle", now=time.time(), duration=60, limit=5)
    folder = throttling.history_folder()
    (idle,) = os.listdir(folder)
    os.utime(folder / idle, (1000, 1000))
    throttling.history_count("busy", now=time.time(), duration=60, limit=5)
    # when
    removed = throttling.histories_prune(folder, before=time.time() - 60)
    # then
    assert removed == 1
    assert len(os.listdir(folder)) == 1 and idle not in os.listdir(folder)


def test_throttled_answers_carry_retry_after_from_the_oldest_request(file_cache, make_customer, settings):
    # given
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "orders": "2/minute"}
    _, client = make_customer("alice")
    # when
    codes = [client.post("/api/orders/", {}, format="json").status_code for _ in range(3)]
    throttled = client.post("/api/orders/", SEED_ORDER, format="json")
    # then: throttling runs before validation, so the bad bodies counted too
    assert codes == [400, 400, 429]
    assert throttled.status_code == 429
    assert 58 <= int(throttled["Retry-After"]) <= 60

"""Throttle histories: shared by every worker process and thread through locked files."""

import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import config.settings as production
from config import throttling
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db


@pytest.fixture
def throttle_dir(settings, tmp_path):
    """A folder of this test's own for the histories, as every web worker shares one."""
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")
    return tmp_path / "throttle"


def _count_many(key: str, attempts: int) -> int:
    return sum(throttling.history_count(key, now=time.time(), duration=60, limit=100)[0] for _ in range(attempts))


def test_production_keeps_the_histories_beside_the_file_cache():
    assert production.CACHES["default"] == {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": production.CACHE_DIR}
    assert production.API_THROTTLE_DIR == f"{production.CACHE_DIR}/throttle"


def test_a_request_counts_in_one_history_of_the_throttle_folder(throttle_dir, make_customer):
    # given
    _, client = make_customer("alice")
    # when
    assert client.get("/api/orders/").status_code == 200
    # then: one history, for the user scope (reading is not an order placement)
    assert throttling.history_folder() == throttle_dir
    assert len(os.listdir(throttle_dir)) == 1


def test_no_count_is_lost_between_threads_and_processes(throttle_dir):
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


def test_the_window_slides_and_the_history_is_newest_first(throttle_dir):
    count = throttling.history_count
    assert count("k", now=1000.0, duration=60, limit=2) == (True, [])
    assert count("k", now=1010.0, duration=60, limit=2) == (True, [1000.0])
    assert count("k", now=1059.0, duration=60, limit=2) == (False, [1010.0, 1000.0])
    assert count("k", now=1060.0, duration=60, limit=2) == (True, [1010.0])  # 1000 left the window
    assert count("other", now=1060.0, duration=60, limit=2) == (True, [])


def test_prune_removes_only_histories_idle_since_the_cutoff(throttle_dir):
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


def test_throttled_answers_carry_retry_after_from_the_oldest_request(throttle_dir, make_customer, settings):
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

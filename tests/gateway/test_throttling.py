"""Request budgets: counted in Redis with REDIS_URL (every web node shares them), else in this
machine's locked history files (every web process and thread of it shares them)."""

import logging
import multiprocessing
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import config.settings as production
from config import throttling
from observability.metrics import metrics_render
from simulation.demo_data import SEED_ORDER
from tests.redis_server import ThrowawayRedis, suite_redis_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def throttle_dir(settings, tmp_path):
    """One machine without Redis (REDIS_URL unset): a folder of this test's own for the
    histories, as every web worker shares one."""
    settings.REDIS_URL = None
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")
    return tmp_path / "throttle"


@pytest.fixture
def shared_redis(settings):
    """The suite's own Redis (make test's REDIS_URL), keys of this test's own."""
    settings.REDIS_URL = suite_redis_url()
    return settings.REDIS_URL


def _count_many(key: str, attempts: int) -> int:
    return sum(throttling.history_count(key, now=time.time(), duration=60, limit=100)[0] for _ in range(attempts))


def test_production_keeps_the_histories_beside_the_file_cache():
    assert production.CACHES["default"] == {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": production.CACHE_DIR}
    assert f"{production.CACHE_DIR}/throttle" == production.API_THROTTLE_DIR


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
    assert len(os.listdir(folder)) == 1
    assert idle not in os.listdir(folder)


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


# --- with Redis -----------------------------------------------------------------------------------
def _shared_count_many(url: str, prefix: str, key: str, attempts: int) -> int:
    window = throttling.shared_window(url, prefix)
    return sum(window.count(key, limit=100, duration=60)[0] for _ in range(attempts))


def _shared_threads_count(url: str, prefix: str, key: str) -> int:
    with ThreadPoolExecutor(4) as threads:
        return sum(threads.map(_shared_count_many, [url] * 4, [prefix] * 4, [key] * 4, [40] * 4))


def test_with_redis_no_count_is_lost_between_threads_and_processes(shared_redis, settings):
    # given: 4 processes of 4 threads, 40 attempts each (640), for one key allowing 100 a minute
    prefix, fork = settings.API_THROTTLE_REDIS_PREFIX, multiprocessing.get_context("fork")
    # when
    with fork.Pool(4) as pool:
        counted = sum(pool.starmap(_shared_threads_count, [(shared_redis, prefix, "throttle_user_1")] * 4))
    # then: exactly the limit got through
    assert counted == 100
    assert throttling.shared_window(shared_redis, prefix).count("throttle_user_1", limit=100, duration=60)[0] is False


def test_with_redis_a_request_counts_there_and_not_in_files(shared_redis, settings, tmp_path, make_customer):
    # given
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "2/minute"}
    customer, client = make_customer("alice")
    # when
    codes = [client.get("/api/orders/").status_code for _ in range(3)]
    # then: the user's window in Redis holds the two counted; no history file was written
    assert codes == [200, 200, 429]
    window = throttling.shared_window(shared_redis, settings.API_THROTTLE_REDIS_PREFIX)
    assert window.count(f"throttle_user_{customer.user_id}", limit=2, duration=60)[0] is False
    assert not (tmp_path / "throttle").exists()


def test_with_redis_throttled_answers_carry_retry_after_from_the_oldest_request(shared_redis, make_customer,
                                                                                 settings):
    # given
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "orders": "2/minute"}
    _, client = make_customer("alice")
    # when
    codes = [client.post("/api/orders/", {}, format="json").status_code for _ in range(2)]
    time.sleep(1.1)
    throttled = client.post("/api/orders/", SEED_ORDER, format="json")
    # then
    assert codes == [400, 400]
    assert throttled.status_code == 429
    assert 50 <= int(throttled["Retry-After"]) <= 59  # from the first of the two, over a second ago


def test_with_redis_down_the_api_keeps_serving_unlimited_logged_and_counted(settings, tmp_path, make_customer,
                                                                            caplog):
    # given: limits in a Redis of this test's own, one request a minute per user, which is used up
    redis_server = ThrowawayRedis(tmp_path / "redis")
    settings.REDIS_URL = redis_server.url
    settings.REDIS_RETRY_SECONDS = 0  # ask Redis on every request: each one finds it away
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "user": "1/minute"}
    settings.API_THROTTLE_REDIS_PREFIX = f"down-{uuid.uuid4().hex}"
    _, client = make_customer("alice")
    assert [client.get("/api/orders/").status_code for _ in range(2)] == [200, 429]
    before = _unchecked_in_metrics("user")
    # when: Redis is killed (-9) and the customer goes on
    redis_server.kill()
    with caplog.at_level(logging.WARNING, logger="config.throttling"):
        started = time.monotonic()
        codes = [client.get("/api/orders/").status_code for _ in range(5)]
        seconds = time.monotonic() - started
    # then: every request served, none waited for the dead Redis, each counted as unchecked
    assert codes == [200] * 5
    assert seconds < 5
    assert _unchecked_in_metrics("user") - before == 5
    assert "request limits unchecked: Redis does not answer" in caplog.text


def test_with_redis_away_requests_do_not_wait_for_it_until_the_retry(settings, make_customer):
    # given: a Redis URL where nothing answers, asked again only after a minute
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.REDIS_RETRY_SECONDS = 60
    _, client = make_customer("alice")
    # when
    codes = [client.get("/api/orders/").status_code for _ in range(3)]
    # then: served; Redis asked once, the later requests not at all
    assert codes == [200, 200, 200]
    assert throttling.shared_window(settings.REDIS_URL, settings.API_THROTTLE_REDIS_PREFIX).away_until > \
        time.monotonic() + 50


def _unchecked_in_metrics(scope: str) -> float:
    body = metrics_render()[0].decode()
    for line in body.splitlines():
        if line.startswith(f'logistics_request_limits_unchecked_total{{scope="{scope}"}}'):
            return float(line.split()[-1])
    return 0.0

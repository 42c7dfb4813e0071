"""Two web nodes (the Procfile's web line twice, on ports and cache folders of their own, as two
machines would run it) share one Redis: 50 concurrent clients spread over both get exactly
each budget through, never more -- per user, anonymous per address, order placement, token
login."""

from __future__ import annotations

import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
import requests

from shop.services import customer_create
from tests.fault.servers import free_port_run
from tests.harness import System, wait_until
from tests.redis_server import suite_redis_url

pytestmark = pytest.mark.e2e

CLIENTS = 50
RATES = {"API_THROTTLE_USER": "100/minute", "API_THROTTLE_ANON": "30/minute", "API_THROTTLE_ORDERS": "20/minute",
         "API_THROTTLE_LOGIN": "10/minute"}


def web_nodes(system: System, *, env: dict[str, str], folder) -> list[str]:
    """Start two web nodes as two machines would run them; returns their base URLs once both answer."""
    port = free_port_run(2, start=33000, stop=34000)
    urls = []
    for n, name in enumerate(("a", "b")):
        system.start(f"web#{name}", env={**env, "WEB_PORT": str(port + n), "DJANGO_CACHE_DIR": str(folder / name)})
        urls.append(f"http://127.0.0.1:{port + n}")
    for url in urls:
        wait_until(partial(_answers, f"{url}/healthz"), timeout=90, what=f"{url}/healthz")
    return urls


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def burst(urls: list[str], method: str, path: str, count: int, *, token: str | None = None,
          json: dict | None = None) -> Counter:
    """``count`` requests from CLIENTS concurrent clients, alternately to each node: status -> n."""
    headers = {"Authorization": f"Token {token}"} if token else {}

    def one(n: int) -> int:
        return requests.request(method, f"{urls[n % len(urls)]}{path}", headers=headers, json=json,
                                timeout=60).status_code

    with ThreadPoolExecutor(CLIENTS) as clients:
        return Counter(clients.map(one, range(count)))


def test_two_web_nodes_on_one_redis_let_through_exactly_each_budget(transactional_db, tmp_path):
    # given: two web nodes counting in the suite's Redis under one prefix of this test's own
    _, user_token = customer_create(username="reader", email="reader@example.com")
    _, buyer_token = customer_create(username="buyer", email="buyer@example.com")
    system = System(log_dir=tmp_path / "logs")
    env = {**RATES, "REDIS_URL": suite_redis_url(), "API_THROTTLE_REDIS_PREFIX": f"two-nodes-{uuid.uuid4().hex}"}
    try:
        urls = web_nodes(system, env=env, folder=tmp_path)
        # when: each budget is asked for by 50 concurrent clients over both nodes
        anonymous = burst(urls, "GET", "/api/products/", 150)
        reader = burst(urls, "GET", "/api/orders/", 150, token=user_token)
        buyer = burst(urls, "POST", "/api/orders/", 100, token=buyer_token, json={})
        login = burst(urls, "POST", "/api/auth/token/", 60, json={})
    except AssertionError:
        print(system.log_tail(30))
        raise
    finally:
        system.stop_all()
    print(f"\n[two web nodes, one Redis] anonymous={dict(anonymous)} user={dict(reader)} orders={dict(buyer)} "
          f"login={dict(login)}")
    # then: exactly the limit of each, the rest 429 (order bodies are checked after the budget: 400)
    assert anonymous == {200: 30, 429: 120}
    assert reader == {200: 100, 429: 50}
    assert buyer == {400: 20, 429: 80}
    assert login == {400: 10, 429: 50}

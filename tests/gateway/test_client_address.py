"""One notion of the client's address: the peer, or what a trusted proxy forwarded."""

import ipaddress
import logging
import os
import time
from typing import Any

import pytest
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config import throttling
from config.client_address import client_address, client_key

pytestmark = pytest.mark.django_db


def address(settings, trusted: list[str], peer: str, forwarded: str | None = None) -> str:
    settings.TRUSTED_PROXIES = [ipaddress.ip_network(n) for n in trusted]
    meta: dict[str, Any] = {"REMOTE_ADDR": peer}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return str(client_address(RequestFactory().get("/", **meta)))


@pytest.mark.parametrize(("trusted", "peer", "forwarded", "expected"), [
    # no trusted proxy (the default): forwarding headers change nothing
    ([], "198.51.100.7", "127.0.0.1", "198.51.100.7"),
    ([], "127.0.0.1", "203.0.113.9", "127.0.0.1"),
    # a trusted proxy: the right-most address it did not add itself
    (["127.0.0.1/32"], "127.0.0.1", "203.0.113.9", "203.0.113.9"),
    (["127.0.0.1/32"], "127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged left part is never read
    (["127.0.0.1/32", "10.0.0.0/8"], "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.1.2.3", "203.0.113.9"),
    (["127.0.0.1/32"], "127.0.0.1", "garbage", "127.0.0.1"),
    (["127.0.0.1/32"], "127.0.0.1", None, "127.0.0.1"),
    (["127.0.0.1/32"], "198.51.100.7", "127.0.0.1", "198.51.100.7"),  # not from the proxy: the peer
    ([], "::ffff:198.51.100.7", None, "198.51.100.7"),
    ([], "not-an-address", None, "0.0.0.0"),  # noqa: S104 - the unknown client, an expected value
])
def test_the_client_address(settings, trusted, peer, forwarded, expected):
    assert address(settings, trusted, peer, forwarded) == expected


def test_ipv6_clients_are_counted_by_their_64():
    one = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2::1")
    other = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2:ffff::9")
    assert client_key(one) == client_key(other) == "2001:db8:1:2::/64"
    assert client_key(RequestFactory().get("/", REMOTE_ADDR="192.0.2.1")) == "192.0.2.1"


@pytest.fixture
def throttle_dir(settings, tmp_path):
    """The histories of one machine without Redis (REDIS_URL unset), in a folder of this test's own."""
    settings.REDIS_URL = None
    settings.API_THROTTLE_DIR = str(tmp_path / "throttle")
    return tmp_path / "throttle"


def test_a_new_forwarded_for_per_request_does_not_dodge_the_anonymous_limit(settings, throttle_dir):
    # given
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "anon": "5/minute"}
    client = APIClient()
    # when: every request claims to come from somewhere else
    codes = [client.get("/api/tracking/SHP-X/", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
             for i in range(8)]
    # then: one client, one history for each of the two scopes (user and anon) counting it
    assert codes == [404] * 5 + [429] * 3
    assert len(os.listdir(throttle_dir)) == 2


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(settings, throttle_dir):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "anon": "2/minute"}
    client = APIClient()
    a = [client.get("/api/tracking/SHP-X/", HTTP_X_FORWARDED_FOR="203.0.113.1").status_code for _ in range(3)]
    b = [client.get("/api/tracking/SHP-X/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.2").status_code for _ in range(3)]
    assert (a, b) == ([404, 404, 429], [404, 404, 429])


def test_throttle_storage_is_bounded_whatever_is_sent(settings, throttle_dir, monkeypatch):
    # given: a cap of 100 histories, pruned every 50 writes
    settings.API_THROTTLE_MAX_HISTORIES = 100
    monkeypatch.setattr(throttling, "PRUNE_EVERY", 50)
    # when: 1,000 distinct keys (as many IPv4 clients) count once each
    for i in range(1000):
        throttling.history_count(f"throttle_anon_{i}", now=time.time(), duration=60, limit=5)
    # then: never more than the cap plus one pruning period
    assert len(os.listdir(throttle_dir)) <= 100 + 50


def test_prune_keeps_the_most_recently_written(throttle_dir):
    for i in range(5):
        throttling.history_count(f"k{i}", now=time.time(), duration=60, limit=5)
    folder = throttling.history_folder()
    for n, name in enumerate(sorted(os.listdir(folder), key=lambda f: os.stat(folder / f).st_mtime)):
        os.utime(folder / name, (1000 + n, 1000 + n))
    newest = max(os.listdir(folder), key=lambda f: os.stat(folder / f).st_mtime)
    assert throttling.histories_prune(folder, before=0, keep_at_most=1) == 4
    assert os.listdir(folder) == [newest]


def test_metrics_believes_no_forwarding_header_from_an_untrusted_peer(settings):
    settings.METRICS_ALLOW_LOOPBACK = True
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200  # a loopback peer
    assert Client().get("/metrics", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="127.0.0.1",
                        HTTP_X_REAL_IP="127.0.0.1", HTTP_FORWARDED="for=127.0.0.1").status_code == 403


def test_metrics_behind_a_trusted_proxy_is_for_the_forwarded_client(settings):
    settings.METRICS_ALLOW_LOOPBACK = True
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9, 127.0.0.1").status_code == 403
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 200


def test_the_access_log_names_the_client_and_escapes_the_path(settings, caplog):
    settings.TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]
    with caplog.at_level(logging.INFO, logger="access"):
        Client().get("/track/a%0Ab/?secret=1", HTTP_X_FORWARDED_FOR="203.0.113.9")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "access"]
    assert line.startswith('203.0.113.9 "GET /track/a\\x0ab/" 400 ')
    assert "secret" not in line
    assert "\n" not in line

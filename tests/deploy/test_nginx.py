"""deploy/nginx/logistics.conf: checked by Debian's nginx (``nginx -t``), then run in front of
gunicorn (started as the Procfile does) while 50 clients send one header byte a second: the
probes through nginx keep answering within a second. The same clients straight at gunicorn hold
all of its threads (measured and printed, not asserted: that is why nginx goes in front).

The site is used as shipped, with only what names this machine replaced: its ports, gunicorn's
port, the certificate (a self-signed one made here) and the checkout's folder. nginx runs with
a pid file, error log and temporary folders of the test's own, and is stopped at the end."""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import ssl
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.fault.servers import free_port_run
from tests.harness import ROOT, System, wait_until

SITE = ROOT / "deploy" / "nginx" / "logistics.conf"
SLOW_CLIENTS = 50
SLOW_SECONDS = 60  # through nginx
DIRECT_SECONDS = 15  # straight at gunicorn, for comparison
PROBE_EVERY = 0.5


def nginx_binary() -> str:
    done = subprocess.run([str(ROOT / "scripts" / "ensure_nginx.sh")], capture_output=True, text=True, timeout=600,
                          check=False)
    if done.returncode != 0:
        pytest.skip(f"no nginx here and it cannot be installed: {done.stderr.strip()}")
    return done.stdout.strip()


def site_here(folder: Path, *, http_port: int, https_port: int, upstream_port: int) -> Path:
    """The shipped site with this machine's ports, certificate and checkout; nginx's own
    configuration around it (pid, logs, temporary files in ``folder``)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    text = SITE.read_text()
    for old, new in {
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "/etc/letsencrypt/live/shop.example.com/fullchain.pem": str(folder / "cert.pem"),
        "/etc/letsencrypt/live/shop.example.com/privkey.pem": str(folder / "key.pem"),
        "/srv/logistics/staticfiles/": f"{ROOT}/staticfiles/",
    }.items():
        assert text.count(old) == 1, f"{SITE} no longer has {old!r} once"
        text = text.replace(old, new)
    (folder / "site.conf").write_text(text)
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                             "scgi"))
    (folder / "nginx.conf").write_text(f"""
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
{temp}
    include {folder / "site.conf"};
}}
""")
    return folder / "nginx.conf"


def nginx_command(nginx: str, conf: Path, *args: str) -> list[str]:
    return [nginx, "-p", str(conf.parent), "-e", str(conf.parent / "error.log"), "-c", str(conf), *args]


def test_nginx_accepts_the_site(tmp_path):
    # given
    nginx = nginx_binary()
    ports = free_port_run(3, start=35000, stop=36000)
    conf = site_here(tmp_path, http_port=ports, https_port=ports + 1, upstream_port=ports + 2)
    # when
    done = subprocess.run(nginx_command(nginx, conf, "-t"), capture_output=True, text=True, timeout=60, check=False)
    # then
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr
    assert "test is successful" in done.stderr


class SlowClients:
    """``count`` clients, each sending one header byte a second for ever; one whose connection
    is closed (nginx's client_header_timeout) connects again at once. They run in a process of
    their own, so that their threads do not slow the probes of this one."""

    def __init__(self, port: int, *, tls: bool, count: int = SLOW_CLIENTS) -> None:
        self.port, self.tls, self.count = port, tls, count
        context = multiprocessing.get_context("fork")
        self._stopping = context.Event()
        self._results = context.Queue()
        self._process = context.Process(target=self._run, daemon=True)
        self.stats: dict[str, int] = {}

    def __enter__(self) -> SlowClients:
        self._process.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.stats = self._results.get(timeout=60)
        self._process.join(timeout=30)

    def _run(self) -> None:
        stats: Counter = Counter()
        lock = threading.Lock()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def count(what: str) -> None:
            with lock:
                stats[what] += 1

        def client() -> None:
            while not self._stopping.is_set():
                try:
                    with contextlib.closing(socket.create_connection(("127.0.0.1", self.port), timeout=5)) as raw:
                        sock = context.wrap_socket(raw) if self.tls else raw
                        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                        count("connections")
                        while not self._stopping.wait(1.0):
                            sock.sendall(b"a")  # one header byte a second, never the end of the head
                except OSError:
                    count("cut off")
                    self._stopping.wait(0.2)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        self._results.put(dict(stats))


def probe(url: str, seconds: float, **kwargs) -> list[float]:
    """GET ``url`` every PROBE_EVERY for ``seconds`` (one kept connection, as a load balancer's
    health check): each answer's seconds (inf: none within 5 s, or not 200)."""
    took = []
    session = requests.Session()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            ok = session.get(url, timeout=5, **kwargs).status_code == 200
        except requests.RequestException:
            ok = False
        took.append(time.monotonic() - started if ok else float("inf"))
        time.sleep(max(0.0, PROBE_EVERY - (time.monotonic() - started)))
    return took


def test_fifty_slow_clients_through_nginx_leave_healthz_answering_within_a_second(db, tmp_path):
    # given: gunicorn as the Procfile starts it, nginx with the shipped site in front
    nginx = nginx_binary()
    ports = free_port_run(3, start=36000, stop=37000)
    http_port, https_port, web_port = ports, ports + 1, ports + 2
    conf = site_here(tmp_path, http_port=http_port, https_port=https_port, upstream_port=web_port)
    system = System(log_dir=tmp_path / "logs")
    system.start("web", env={"WEB_PORT": str(web_port)})
    proxy = subprocess.Popen(nginx_command(nginx, conf, "-g", "daemon off;"), stderr=subprocess.PIPE)
    through_nginx = f"https://127.0.0.1:{https_port}/healthz"
    direct = f"http://127.0.0.1:{web_port}/healthz"
    try:
        wait_until(lambda: probe(through_nginx, 0.01, verify=str(tmp_path / "cert.pem"))[0] < 5, timeout=90,
                   what="/healthz through nginx")
        # when: 50 slow clients at nginx for 60 s, probing /healthz through it all along
        with SlowClients(https_port, tls=True) as slow:
            nginx_probes = probe(through_nginx, SLOW_SECONDS, verify=str(tmp_path / "cert.pem"))
        nginx_stats = slow.stats
        # ... and, to compare, the same clients straight at gunicorn
        with SlowClients(web_port, tls=False) as slow:
            time.sleep(2)
            direct_probes = probe(direct, DIRECT_SECONDS)
        direct_stats = slow.stats
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
        system.stop_all()
    within = sum(1 for seconds in nginx_probes if seconds < 1.0)
    direct_within = sum(1 for seconds in direct_probes if seconds < 1.0)
    print(f"\n[slow clients] through nginx: {within}/{len(nginx_probes)} probes within 1 s, slowest "
          f"{max(nginx_probes):.3f}s; slow clients {nginx_stats}\n"
          f"  straight at gunicorn: {direct_within}/{len(direct_probes)} probes within 1 s; "
          f"slow clients {direct_stats}")
    # then: every probe through nginx answered 200 within a second, all 60 s long
    assert len(nginx_probes) >= SLOW_SECONDS / PROBE_EVERY * 0.8
    assert max(nginx_probes) < 1.0, sorted(nginx_probes)[-5:]
    assert nginx_stats["connections"] >= SLOW_CLIENTS

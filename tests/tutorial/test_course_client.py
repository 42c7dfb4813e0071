"""The course's own client (its test_integration.py, unmodified) against the system as `make
tutorial` runs it: the Procfile and Procfile.tutorial's processes, at the tutorial's time scale.

tests/tutorial/course_client.py is ``../shared/seed/test_integration.py`` (the course's
``logistika_integratsioon/test_integration.py``) byte for byte. It calls
http://localhost:5001 and http://localhost:5002, fixed in its code: the test needs those ports.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests

from course.services import GUEST_USERNAME
from messaging.models import DeadLetter, OutboxMessage
from shop.models import Order
from tests.harness import ROOT, System, procfile_processes, wait_until

CLIENT = ROOT / "tests" / "tutorial" / "course_client.py"
# Where the seed lies beside a checkout: ../shared (a clone), ../../shared (a worktree of one).
SEED_CLIENTS = [ROOT.parent / "shared" / "seed" / "test_integration.py",
                ROOT.parent.parent / "shared" / "seed" / "test_integration.py"]
COURSE_PORTS = (5001, 5002)
STAGES = ["vehicle_assigned", "picked_up", "in_transit", "out_for_delivery", "delivered"]


def tutorial_time_scale() -> str:
    """SIM_TIME_SCALE as `make tutorial` sets it (the Makefile's TUTORIAL_TIME_SCALE)."""
    match = re.search(r"^TUTORIAL_TIME_SCALE := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile names TUTORIAL_TIME_SCALE"
    return match.group(1)


def port_taken(port: int) -> str | None:
    """What holds ``port`` on loopback (the client's ``localhost`` is either address), or None."""
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                if probe.connect_ex((address, port)) == 0:
                    return f"something already listens on {address} port {port}"
            except OSError:
                continue  # no IPv6 here
    return None


def course_api_answers() -> bool:
    try:
        shop = requests.get("http://127.0.0.1:5001/orders/none", timeout=5)
        tracking = requests.get("http://127.0.0.1:5002/tracking/none", timeout=5)
    except requests.RequestException:  # not listening yet, or listening while its worker boots
        return False
    return (shop.status_code, tracking.status_code) == (404, 404)


@pytest.mark.skipif(not any(path.exists() for path in SEED_CLIENTS), reason="no ../shared/seed beside this checkout")
def test_the_client_in_the_suite_is_the_courses_byte_for_byte():
    seed = next(path for path in SEED_CLIENTS if path.exists())
    assert CLIENT.read_bytes() == seed.read_bytes()


@pytest.mark.e2e
def test_the_courses_client_unmodified_sees_its_order_delivered(transactional_db, broker, catalogue):
    # given: the system as `make tutorial` runs it (but the site's web on port 8000, which the
    # course's client never calls), the course's API on the client's ports
    taken = [reason for reason in map(port_taken, COURSE_PORTS) if reason]
    if taken:
        pytest.skip(f"the course's client calls localhost:5001 and :5002 only; {'; '.join(taken)}")
    log_dir = ROOT / ".run" / "test-logs" / "tutorial"
    shutil.rmtree(log_dir, ignore_errors=True)
    system = System(env={"SIM_TIME_SCALE": tutorial_time_scale(), "SIM_ACTORS": "1"}, log_dir=log_dir)
    try:
        system.start_procfile(ROOT / "Procfile", skip={"web"})
        system.start_procfile(ROOT / "Procfile.tutorial")
        try:
            wait_until(course_api_answers, timeout=60, what="the course's API on ports 5001 and 5002")
        except AssertionError:
            print(system.log_tail())
            raise
        # when: the course's client, as a student runs it
        started = time.monotonic()
        run = subprocess.run([sys.executable, str(CLIENT)], cwd=ROOT, capture_output=True, text=True, timeout=180)
        took = time.monotonic() - started
    finally:
        system.stop_all()
    print(run.stdout, run.stderr, f"the course's client took {took:.1f}s", sep="\n")
    # then: it placed its order, saw the shipment delivered and the stages, and no error
    assert run.returncode == 0
    assert "Viga" not in run.stdout
    placed = re.search(r"^Tellimus loodud ID-ga: (\S+)$", run.stdout, re.MULTILINE)
    assert placed
    assert "Saadetise olek: delivered" in run.stdout.splitlines()
    events = run.stdout.split("Saadetise sündmused:\n", 1)[1].splitlines()
    assert [re.match(r"- \S+: (\w+) - ", line).group(1) for line in events if line.startswith("- ")] == STAGES
    assert run.stdout.rstrip().endswith("=== INTEGRATSIOONISTSENAARIUM LÕPETATUD ===")
    # each part of the course's API said at start what it serves, where and for whom
    started_lines = {name: [line for line in (system.log_dir / f"{name}-0.log").read_text().splitlines()
                            if "tutorial mode:" in line] for name in ("course_shop", "course_tracking")}
    assert [len(lines) for lines in started_lines.values()] == [1, 1]
    assert "e-shop (POST /orders, GET /orders/<id>) on http://127.0.0.1:5001" in started_lines["course_shop"][0]
    assert "customer service (GET /tracking/<shipment_id>) on http://127.0.0.1:5002" in \
        started_lines["course_tracking"][0]
    # the guest's one order, delivered along the shop's own road
    order = Order.objects.get(pk=placed.group(1))
    assert (order.customer.user.username, order.status, Order.objects.count()) == (GUEST_USERNAME, "delivered", 1)
    assert OutboxMessage.objects.filter(correlation_id=order.id, type="order.placed").count() == 1
    assert DeadLetter.objects.count() == 0


def test_make_tutorial_serves_the_procfile_and_the_course_api():
    # given
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntutorial:", 1)[1].split("\n\n", 1)[0]
    # then: every process of `make run`, plus the course's two
    assert "cat Procfile Procfile.tutorial > .run/Procfile.tutorial" in recipe
    assert "honcho -f .run/Procfile.tutorial -d . start" in recipe
    assert "SIM_TIME_SCALE=$${SIM_TIME_SCALE:-$(TUTORIAL_TIME_SCALE)}" in recipe
    assert float(tutorial_time_scale()) == 0.5
    # and the demo's world: simulated actors and payment provider, asked for by the target
    world = {line.split(": export ", 1)[1] for line in makefile.splitlines()
             if ": export " in line and "tutorial" in line.split(":", 1)[0].split()}
    assert world == {"SIM_ACTORS ?= 1", "PAYMENT_PROVIDER ?= simulated"}


def test_procfile_tutorial_names_the_two_course_processes():
    # when
    processes = procfile_processes(ROOT / "Procfile.tutorial")
    # then
    gunicorn = ["-m", "gunicorn", "-c", "course/gunicorn.conf.py", "config.wsgi:application"]
    assert processes == {"course_shop": ({"TUTORIAL_API": "shop"}, gunicorn),
                         "course_tracking": ({"TUTORIAL_API": "tracking"}, gunicorn)}



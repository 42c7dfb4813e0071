"""Every relay and worker seen: heartbeats, silence after a kill, the live count in /metrics."""

from __future__ import annotations

import signal
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from messaging.heartbeats import Heartbeat
from messaging.models import WorkerHeartbeat
from observability import metrics
from observability.selectors import workers_live_per_queue, workers_seen
from tests.harness import System, wait_until


def staff_client(django_user_model) -> Client:
    user = django_user_model.objects.create_user("ops-hb", password="pw-hb-1", is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_a_heartbeat_says_live_then_silent_then_a_clean_stop_says_stopped():
    # given
    beat = Heartbeat(kind="consumer", queue="new_orders")
    beat.counted(3)
    beat.beat()
    now = timezone.now()
    # then: live, counted in the metrics
    (seen,) = workers_seen(now=now)
    assert (seen["state"], seen["queue"], seen["messages"]) == ("live", "new_orders", 3)
    assert workers_live_per_queue(now=now) == {("consumer", "new_orders"): 1}
    assert 'logistics_workers_live{kind="consumer",queue="new_orders"} 1.0' in metrics.metrics_render()[0].decode()
    # when: 31 s without a beat
    later = now + timedelta(seconds=31)
    # then
    assert workers_seen(now=later)[0]["state"] == "silent"
    assert workers_live_per_queue(now=later) == {}
    # when: it stops cleanly
    beat.stopped()
    assert workers_seen(now=later)[0]["state"] == "stopped"


@pytest.mark.django_db
def test_beats_are_written_at_most_every_interval():
    # given
    beat = Heartbeat(kind="relay")
    beat.beat()
    first = WorkerHeartbeat.objects.get().beat_at
    # when: called again at once
    beat.beat()
    # then: not written again
    assert WorkerHeartbeat.objects.get().beat_at == first


@pytest.mark.django_db
def test_a_publishing_relay_is_marked():
    # given
    relay = Heartbeat(kind="relay")
    relay.counted(10)
    relay.beat()
    idle = Heartbeat(kind="relay")
    idle.beat()
    # when
    seen = workers_seen(now=timezone.now())
    # then
    assert sorted(w["publishing"] for w in seen) == [False, True]


@override_settings(WORKER_SILENT_SECONDS=3)
def test_a_killed_worker_shows_up_silent_on_the_dashboard(transactional_db, broker, django_user_model):
    # given: a relay and a worker running, beating every half second
    system = System(env={"WORKER_HEARTBEAT_SECONDS": "0.5"})
    try:
        system.start("relay")
        system.start("delivery_updates")
        client = staff_client(django_user_model)

        def states() -> dict[str, str]:
            workers = client.get("/dashboard/data.json").json()["workers"]
            return {w["queue"] or w["kind"]: w["state"] for w in workers if w["state"] != "stopped"}

        wait_until(lambda: states() == {"relay": "live", "delivery_updates": "live"}, timeout=30,
                   what="both beating")
        # when: the worker is killed
        system.kill("delivery_updates", sig=signal.SIGKILL)
        # then: silent within the silence limit (3 s here, 30 s by default), the relay still live
        wait_until(lambda: states() == {"relay": "live", "delivery_updates": "silent"}, timeout=15,
                   what="the killed worker silent")
        text = metrics.metrics_render()[0].decode()
        assert 'logistics_workers_live{kind="relay",queue=""} 1.0' in text
        # (the live count only: other metrics of the queue, a handler time's sum, may read "1.0...")
        assert 'logistics_workers_live{kind="consumer",queue="delivery_updates"}' not in text
    finally:
        system.stop_all()

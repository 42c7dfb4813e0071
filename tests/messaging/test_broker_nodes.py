"""RABBITMQ_URL naming several nodes: every connection takes the first that answers."""

from __future__ import annotations

import io
import socket

import pika
import pytest
from django.core.management import call_command
from django.test import Client

from messaging import broker as broker_mod
from messaging import topology
from messaging.publisher import ConfirmingPublisher, Outgoing
from observability import selectors

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["refuses", "does not resolve"])
def dead_node_first(request, settings, broker) -> str:
    """RABBITMQ_URL: a node that refuses connections, or whose name does not resolve (its container
    is gone), then the test broker."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    dead = f"127.0.0.1:{closed}" if request.param == "refuses" else "rabbit-gone.invalid:5672"
    live = settings.RABBITMQ_URL
    settings.RABBITMQ_URL = f"amqp://guest:guest@{dead}/%2F, {live}"
    return live


def test_no_node_answering_is_a_connection_error_the_workers_retry_not_a_crash(settings):
    # a worker retries AMQPConnectionError with a back-off; a bare socket.gaierror killed it
    settings.RABBITMQ_URL = "amqp://guest:guest@rabbit-gone.invalid:5672/%2F,amqp://guest:guest@127.0.0.1:1/%2F"
    with pytest.raises(pika.exceptions.AMQPConnectionError, match="no broker node answers: rabbit-gone.invalid:5672"):
        broker_mod.connect()


def test_node_urls_are_the_comma_separated_urls_in_order(settings):
    settings.RABBITMQ_URL = "amqp://u:p@10.0.0.1:5672/v, amqp://u:p@10.0.0.2:5673/v,,amqp://u:p@10.0.0.3/v"
    nodes = broker_mod.node_parameters()
    assert [(p.host, p.port, p.virtual_host) for p in nodes] == [
        ("10.0.0.1", 5672, "v"), ("10.0.0.2", 5673, "v"), ("10.0.0.3", 5672, "v")]
    assert {(p.connection_attempts, p.stack_timeout, p.heartbeat) for p in nodes} == {(1, 10, 30)}


def test_a_connection_takes_the_next_node_when_the_first_refuses(dead_node_first):
    # when
    connection = broker_mod.connect()
    # then
    try:
        assert connection.is_open
        assert connection.channel().queue_declare("new_orders", passive=True).method.consumer_count == 0
    finally:
        connection.close()


def test_the_relays_publisher_takes_the_next_node_when_the_first_refuses(dead_node_first, broker):
    # given
    publisher = ConfirmingPublisher(broker_mod.node_parameters(), window=10)
    # when
    result = publisher.publish_batch([
        Outgoing(key=n, exchange=topology.exchange(), routing_key="new_orders", body=b"{}",
                 properties=pika.BasicProperties(message_id=f"m-{n}", delivery_mode=2))
        for n in range(3)])
    publisher.close()
    # then
    assert result.confirmed == [0, 1, 2]
    assert result.failed == {}
    assert result.error is None
    assert broker.queue_declare("new_orders", passive=True).method.message_count == 3


def test_setup_broker_readyz_and_the_dashboard_take_the_next_node(dead_node_first):
    out = io.StringIO()
    call_command("setup_broker", stdout=out)
    assert "declared" in out.getvalue()
    assert Client().get("/readyz").json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    depths = selectors.queue_depths()
    assert depths["reachable"] is True
    assert {q["queue"] for q in depths["queues"]} == set(topology.work_queues())

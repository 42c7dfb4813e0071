"""Connections to RabbitMQ. Everything that opens one goes through here.

``RABBITMQ_URL`` names one node, or the nodes of one cluster separated by commas. A connection
tries them in the order given and takes the first that answers (``connect()`` here; the relay's
publisher does the same itself), so a process whose node died connects to the next one when it
reconnects. A node whose name does not resolve (its container or pod is gone, DNS is not up
yet) is skipped like one that refuses: pika's BlockingConnection given a list of nodes gave up
on all of them at the first such name, and a worker died of it instead of reconnecting.
"""

from __future__ import annotations

import logging

import pika
from django.conf import settings
from pika.exceptions import AMQPConnectionError

logger = logging.getLogger(__name__)


def node_urls(url: str | None = None) -> list[str]:
    """The AMQP URLs named by ``url`` (default: RABBITMQ_URL), in order."""
    urls = [part.strip() for part in (settings.RABBITMQ_URL if url is None else url).split(",")]
    return [u for u in urls if u] or ["amqp://guest:guest@127.0.0.1:5672/%2F"]


def node_parameters(*, heartbeat: int = 30) -> list[pika.URLParameters]:
    """Connection parameters of each node, in the order RABBITMQ_URL names them."""
    nodes = []
    for url in node_urls():
        params = pika.URLParameters(url)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = 60
        params.connection_attempts = 1
        params.socket_timeout = 5
        # A paused node still accepts TCP connections (its kernel does) but never answers: give
        # up on it within 10 s and try the next one.
        params.stack_timeout = 10
        params.client_properties = {"connection_name": "logistics"}
        nodes.append(params)
    return nodes


def connect(*, heartbeat: int = 30) -> pika.BlockingConnection:
    """A connection to the first node that answers; AMQPConnectionError when none does."""
    nodes = node_parameters(heartbeat=heartbeat)
    failures = []
    for parameters in nodes:
        try:
            return pika.BlockingConnection(parameters)
        except (AMQPConnectionError, OSError) as exc:  # refused, timed out, or a name that does not resolve
            failures.append(f"{parameters.host}:{parameters.port}: {exc!r}")
            if len(nodes) > 1:
                logger.warning("broker node %s:%s did not answer (%r)", parameters.host, parameters.port, exc)
    raise AMQPConnectionError("no broker node answers: " + "; ".join(failures))


def broker_reachable() -> bool:
    try:
        conn = connect()
    except AMQPConnectionError:  # what connect() raises when no node answers
        return False
    conn.close()
    return True


def queue_depths(queues: list[str]) -> dict[str, tuple[int, int] | None]:
    """{queue: (messages ready, consumers)} by passive declare; None when it does not exist."""
    result: dict[str, tuple[int, int] | None] = {}
    conn = connect()
    try:
        for name in queues:
            channel = conn.channel()
            try:
                ok = channel.queue_declare(queue=name, passive=True)
                result[name] = (ok.method.message_count, ok.method.consumer_count)
                channel.close()
            except pika.exceptions.ChannelClosedByBroker:
                result[name] = None
    finally:
        conn.close()
    return result


def queues_purge(names: list[str]) -> int:
    """Empty the named queues (they must exist); returns how many messages were dropped."""
    conn = connect()
    try:
        channel = conn.channel()
        return sum(channel.queue_purge(name).method.message_count for name in names)
    finally:
        conn.close()

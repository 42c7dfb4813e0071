"""Connections to RabbitMQ. Everything that opens one goes through here."""

from __future__ import annotations

import pika
from django.conf import settings


def connection_parameters(*, heartbeat: int = 30) -> pika.URLParameters:
    params = pika.URLParameters(settings.RABBITMQ_URL)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.client_properties = {"connection_name": "logistics"}
    return params


def connect(*, heartbeat: int = 30) -> pika.BlockingConnection:
    return pika.BlockingConnection(connection_parameters(heartbeat=heartbeat))


def broker_reachable() -> bool:
    try:
        conn = connect()
    except Exception:
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

"""Exit 0 when RabbitMQ answers at RABBITMQ_URL (stdlib + pika only; no Django)."""

import os
import sys

import pika

url = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"
try:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 3
    pika.BlockingConnection(params).close()
except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
    if "-v" in sys.argv:
        print(f"RabbitMQ not reachable at {url}: {exc!r}", file=sys.stderr)
    sys.exit(1)
sys.exit(0)

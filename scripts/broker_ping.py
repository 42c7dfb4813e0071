"""Exit 0 when RabbitMQ answers at RABBITMQ_URL (stdlib + pika only; no Django).

RABBITMQ_URL may name several nodes separated by commas: one answering is enough."""

import os
import sys

import pika

url = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"
try:
    nodes = []
    for node_url in filter(None, (part.strip() for part in url.split(","))):
        params = pika.URLParameters(node_url)
        params.connection_attempts = 1
        params.socket_timeout = 3
        nodes.append(params)
    pika.BlockingConnection(nodes).close()
except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
    if "-v" in sys.argv:
        print(f"RabbitMQ not reachable at {url}: {exc!r}", file=sys.stderr)
    sys.exit(1)
sys.exit(0)

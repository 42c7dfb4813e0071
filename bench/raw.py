"""Raw baselines with plain pika, beside which the project's figures are read."""

from __future__ import annotations

import json
import multiprocessing
import time
import uuid
from typing import Any

import pika

from bench.common import percentile

BASELINE_QUEUE = "bench.raw"


def _params(url: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 30
    return params


def raw_publish_msgs_per_s(url: str, *, messages: int, body: bytes, window: int = 100) -> float:
    """Persistent messages to a durable queue, publisher confirms, ``window`` unconfirmed in flight."""
    setup = pika.BlockingConnection(_params(url))
    channel = setup.channel()
    channel.queue_declare(BASELINE_QUEUE, durable=True)
    channel.queue_purge(BASELINE_QUEUE)
    setup.close()

    state = {"sent": 0, "acked": 0, "inflight": 0, "started": 0.0, "finished": 0.0}
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def pump(ch):
        while state["sent"] < messages and state["inflight"] < window:
            ch.basic_publish("", BASELINE_QUEUE, body, properties)
            state["sent"] += 1
            state["inflight"] += 1

    def on_confirm(frame):
        tag = frame.method.delivery_tag
        done = tag - state["acked"] if frame.method.multiple else 1
        state["acked"] += done
        state["inflight"] -= done
        if state["acked"] >= messages:
            state["finished"] = time.perf_counter()
            connection.close()
        else:
            pump(channel_holder["ch"])

    channel_holder: dict[str, Any] = {}

    def on_select_ok(_frame):
        state["started"] = time.perf_counter()
        pump(channel_holder["ch"])

    def on_channel(ch):
        channel_holder["ch"] = ch
        ch.confirm_delivery(on_confirm, on_select_ok)

    def on_closed(conn, _reason):
        conn.ioloop.stop()

    connection = pika.SelectConnection(_params(url), on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                                       on_close_callback=on_closed)
    connection.ioloop.start()
    cleanup = pika.BlockingConnection(_params(url))
    cleanup.channel().queue_delete(BASELINE_QUEUE)
    cleanup.close()
    return messages / (state["finished"] - state["started"])


def _raw_consumer(url: str, count: int, ready, out) -> None:
    connection = pika.BlockingConnection(_params(url))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=50)
    latencies = []
    ready.set()
    for method, _props, body in channel.consume(BASELINE_QUEUE, inactivity_timeout=30):
        if method is None:
            break
        latencies.append((time.time() - json.loads(body)["sent_at"]) * 1000)
        channel.basic_ack(method.delivery_tag)
        if len(latencies) >= count:
            break
    connection.close()
    out.put(latencies)


def raw_publish_to_consume_ms(url: str, *, messages: int, rate_per_s: float) -> dict[str, float]:
    """Confirmed publish -> consumer callback, at a paced rate (latency, not throughput)."""
    setup = pika.BlockingConnection(_params(url))
    channel = setup.channel()
    channel.queue_declare(BASELINE_QUEUE, durable=True)
    channel.queue_purge(BASELINE_QUEUE)
    channel.confirm_delivery()
    ready, out = multiprocessing.Event(), multiprocessing.Queue[Any]()
    consumer = multiprocessing.Process(target=_raw_consumer, args=(url, messages, ready, out))
    consumer.start()
    ready.wait(30)
    time.sleep(0.3)
    gap = 1.0 / rate_per_s
    for _ in range(messages):
        body = json.dumps({"id": str(uuid.uuid4()), "sent_at": time.time()}).encode()
        channel.basic_publish("", BASELINE_QUEUE, body, pika.BasicProperties(delivery_mode=2))
        time.sleep(gap)
    latencies = out.get(timeout=60)
    consumer.join(10)
    channel.queue_delete(BASELINE_QUEUE)
    setup.close()
    return {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)}

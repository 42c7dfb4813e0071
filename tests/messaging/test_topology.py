"""The topology on the real broker: what an upgrade leaves behind is tidied."""

import io

import pika
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from messaging import broker as broker_mod
from messaging import topology


def test_declare_unbinds_a_subscription_an_earlier_version_had(broker):
    # given: payments' queue still bound to order.confirmed, as before the shop asked it
    # for payments itself
    broker.queue_bind(queue="payment_requests", exchange=topology.EVENTS_EXCHANGE, routing_key="order.confirmed")
    # when
    topology.declare(broker)
    # then: an order.confirmed reaches the shop's queue only
    broker.confirm_delivery()
    broker.basic_publish(topology.EVENTS_EXCHANGE, "order.confirmed", b"{}",
                         pika.BasicProperties(message_id="m-1", type="order.confirmed"), mandatory=True)
    assert broker.basic_get("order_confirmations", auto_ack=True)[0] is not None
    assert broker.basic_get("payment_requests", auto_ack=True)[0] is None


@pytest.mark.parametrize("event", sorted(topology.EVENT_SUBSCRIPTIONS))
def test_every_subscribed_queue_gets_its_copy_of_each_event(broker, event):
    broker.confirm_delivery()
    broker.basic_publish(topology.EVENTS_EXCHANGE, event, b"{}", pika.BasicProperties(message_id="m", type=event))
    got = {q for q in topology.work_queues() if broker.basic_get(q, auto_ack=True)[0] is not None}
    assert got == set(topology.EVENT_SUBSCRIPTIONS[event])


# --- quorum queues, and the upgrade from classic ones ---------------------------------------------
def classic_topology_declare(channel) -> None:
    """The queues as versions before quorum queues declared them (classic, durable)."""
    for spec in topology.queue_specs():
        channel.queue_delete(spec.name)
    for queue in topology.work_queues():
        channel.queue_declare(queue=queue, durable=True, arguments={
            "x-dead-letter-exchange": topology.dead_letter_exchange(), "x-dead-letter-routing-key": queue})
        channel.queue_bind(queue=queue, exchange=topology.exchange(), routing_key=queue)
        for event in topology.subscriptions_of(queue):
            channel.queue_bind(queue=queue, exchange=topology.EVENTS_EXCHANGE, routing_key=event)
        channel.queue_declare(queue=topology.dead_letter_queue(queue), durable=True)
        channel.queue_bind(queue=topology.dead_letter_queue(queue), exchange=topology.dead_letter_exchange(),
                           routing_key=queue)
        for attempt, delay in enumerate(topology.retry_delays(), start=1):
            channel.queue_declare(queue=topology.retry_queue(queue, attempt), durable=True, arguments={
                "x-message-ttl": int(delay * 1000), "x-dead-letter-exchange": topology.exchange(),
                "x-dead-letter-routing-key": queue})


def queue_is_quorum(name: str) -> bool:
    """Declaring it with its quorum arguments is accepted (it is refused, 406, for a queue that
    exists with other arguments: a classic queue)."""
    spec = next(spec for spec in topology.queue_specs() if spec.name == name)
    assert spec.arguments["x-queue-type"] == "quorum"
    connection = broker_mod.connect()
    try:
        connection.channel().queue_declare(queue=name, durable=True, passive=False, arguments=spec.arguments)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 406, exc  # noqa: PT017 - a helper that answers, not a test
        return False
    finally:
        if connection.is_open:
            connection.close()
    return True


def drain(channel, queue: str) -> list[tuple[str, bytes, dict]]:
    """(message id, body, headers but the count a quorum queue adds) of every message of ``queue``."""
    got = []
    while (message := channel.basic_get(queue, auto_ack=True))[0] is not None:
        headers = {k: v for k, v in (message[1].headers or {}).items() if k != "x-delivery-count"}
        got.append((message[1].message_id, message[2], headers))
    return got


def test_every_queue_is_a_quorum_queue_with_a_delivery_limit(broker):
    names = topology.all_queue_names()
    assert all(spec.arguments["x-queue-type"] == "quorum" and spec.arguments["x-delivery-limit"] == 20
               for spec in topology.queue_specs())
    assert {spec.name for spec in topology.queue_specs()} == set(names)
    assert [name for name in names if not queue_is_quorum(name)] == []


def test_setup_broker_migrate_moves_classic_queues_to_quorum_queues_with_their_messages(broker):
    # given: the classic queues of an earlier version, with messages waiting in a work queue,
    # a retry queue and a dead-letter queue
    broker.confirm_delivery()
    classic_topology_declare(broker)
    for n in range(3):
        broker.basic_publish(topology.EVENTS_EXCHANGE, "order.placed", f'{{"n": {n}}}'.encode(),
                             pika.BasicProperties(message_id=f"placed-{n}", type="order.placed", delivery_mode=2),
                             mandatory=True)
    broker.basic_publish("", "new_orders.retry.3", b'{"r": 1}',
                         pika.BasicProperties(message_id="retried", headers={"x-retry-attempt": 3}, delivery_mode=2),
                         mandatory=True)
    broker.basic_publish(topology.dead_letter_exchange(), "new_orders", b'{"d": 1}',
                         pika.BasicProperties(message_id="parked", delivery_mode=2), mandatory=True)
    assert not queue_is_quorum("new_orders")

    # when: setup_broker as before: a clear refusal that says what to do
    with pytest.raises(CommandError, match=r"'new_orders'.*stop the workers.*setup_broker --migrate"):
        call_command("setup_broker", stdout=io.StringIO())
    # ... and with --migrate
    out = io.StringIO()
    call_command("setup_broker", "--migrate", stdout=out)

    # then: every queue is a quorum queue, every message is where it was, as it was
    assert [name for name in topology.all_queue_names() if not queue_is_quorum(name)] == []
    assert f"migrated {len(topology.all_queue_names())} queues, 8 messages moved" in out.getvalue()
    assert drain(broker, "new_orders") == [(f"placed-{n}", f'{{"n": {n}}}'.encode(), {}) for n in range(3)]
    assert drain(broker, "support_requests") == [(f"placed-{n}", f'{{"n": {n}}}'.encode(), {}) for n in range(3)]
    assert drain(broker, "new_orders.retry.3") == [("retried", b'{"r": 1}', {"x-retry-attempt": 3})]
    assert drain(broker, "new_orders.dlq") == [("parked", b'{"d": 1}', {})]
    # no holding queue is left behind, and the bindings are those of the new queues
    assert broker_mod.queue_depths([topology.holding_queue("new_orders")]) == {"new_orders.migrating": None}
    broker.basic_publish(topology.EVENTS_EXCHANGE, "order.placed", b"{}",
                         pika.BasicProperties(message_id="after", type="order.placed"), mandatory=True)
    assert [m[0] for m in drain(broker, "new_orders")] == ["after"]
    # and it is idempotent: nothing more to move
    out = io.StringIO()
    call_command("setup_broker", "--migrate", stdout=out)
    assert "migrated" not in out.getvalue()


def test_migrate_refuses_to_drop_a_classic_queue_a_worker_still_consumes(broker):
    # given: a classic new_orders with a consumer attached
    classic_topology_declare(broker)
    worker = broker_mod.connect()
    worker.channel().basic_consume("new_orders", lambda *args: None)
    try:
        # when / then
        with pytest.raises(CommandError, match=r"'new_orders' must be moved but has 1 consumer"):
            call_command("setup_broker", "--migrate", stdout=io.StringIO())
    finally:
        worker.close()
    call_command("setup_broker", "--migrate", stdout=io.StringIO())
    assert queue_is_quorum("new_orders")

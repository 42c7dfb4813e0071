"""The topology on the real broker: what an upgrade leaves behind is tidied."""

import pika
import pytest

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

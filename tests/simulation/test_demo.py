"""What the demo does before it starts the system: refuse a second copy, abandon leftovers."""

from datetime import timedelta

import pika
import pytest
from django.utils import timezone

from messaging import broker as broker_mod
from messaging.models import OutboxMessage
from simulation.demo import DemoError, Leftovers, broker_idle_check, leftovers_discard
from transport.models import Vehicle


def publish(channel, queue: str, body: bytes = b"{}") -> None:
    channel.basic_publish(exchange="", routing_key=queue, body=body,
                          properties=pika.BasicProperties(delivery_mode=2))


def an_outbox_row(**fields) -> OutboxMessage:
    return OutboxMessage.objects.create(queue="sim_actors", type="sim.picking_done", correlation_id="order-1",
                                        payload={"order_id": "order-1"}, **fields)


@pytest.mark.django_db
def test_an_interrupted_runs_work_is_abandoned_and_its_dead_letters_kept(broker):
    # given
    publish(broker, "new_orders")
    publish(broker, "delivery_updates.retry.1")
    publish(broker, "new_orders.dlq")
    timer = an_outbox_row(due_at=timezone.now() + timedelta(seconds=60))
    message = an_outbox_row()
    sent_timer = an_outbox_row(due_at=timezone.now(), published_at=timezone.now())
    Vehicle.objects.create(code="VEH-busy", type="van", location="Tallinn", status=Vehicle.Status.BUSY)
    Vehicle.objects.create(code="VEH-free", type="van", location="Tartu")

    # when
    leftovers = leftovers_discard()

    # then
    assert leftovers == Leftovers(messages_purged=2, timers_discarded=1, vehicles_freed=1, orders_unfinished=0)
    assert broker_mod.queue_depths(["new_orders", "delivery_updates.retry.1", "new_orders.dlq"]) == {
        "new_orders": (0, 0), "delivery_updates.retry.1": (0, 0), "new_orders.dlq": (1, 0),
    }
    assert sorted(OutboxMessage.objects.values_list("id", flat=True)) == sorted([message.id, sent_timer.id])
    assert not OutboxMessage.objects.filter(id=timer.id).exists()
    assert list(Vehicle.objects.values_list("code", "status")) == [("VEH-busy", "available"), ("VEH-free", "available")]


def test_the_demo_refuses_to_run_beside_another_copy_of_the_system(broker):
    # given
    broker.basic_consume(queue="payment_results", on_message_callback=lambda *args: None)

    # when
    with pytest.raises(DemoError) as refused:
        broker_idle_check()

    # then
    assert str(refused.value) == (
        "another copy of the system is consuming from this broker: payment_results (1 consumer). "
        "Stop it (make run, tests, ...) first, or point RABBITMQ_URL at another broker or vhost."
    )

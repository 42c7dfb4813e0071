"""One worker process consuming several queues (``manage.py consume q1 q2 ...``), on the real broker."""

import json
import uuid

import pika
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from honcho.environ import parse_procfile

from messaging import topology
from messaging.consumer import QueueWorker, Worker
from messaging.models import DeadLetter, ProcessedMessage, WorkerHeartbeat
from support.models import CustomerContact
from tests.messaging.examples import order_placed_payload
from warehouse.models import Reservation

pytestmark = pytest.mark.django_db(transaction=True)


def publish(channel, queue: str, body: bytes, *, message_id: str) -> None:
    channel.basic_publish(exchange="", routing_key=queue, body=body, properties=pika.BasicProperties(
        message_id=message_id, type="order.placed", correlation_id="c", delivery_mode=2))


def depth(channel, queue: str) -> int:
    return channel.queue_declare(queue, passive=True).method.message_count


def test_one_worker_handles_each_queue_with_its_own_consumer_and_parks_per_queue(catalogue, broker):
    # given: three orders for the warehouse and for customer service, and one poison message in each queue
    orders = [str(uuid.uuid4()) for _ in range(3)]
    for i, order_id in enumerate(orders):
        body = json.dumps(order_placed_payload(order_id)).encode()
        publish(broker, "new_orders", body, message_id=f"m{i}")
        publish(broker, "support_requests", body, message_id=f"m{i}")
    publish(broker, "new_orders", b"{not json", message_id="bad")
    publish(broker, "support_requests", b"{not json", message_id="bad")
    warehouse = QueueWorker("new_orders", prefetch=10, install_signal_handlers=False)
    support = QueueWorker("support_requests", prefetch=10, install_signal_handlers=False)
    # when
    Worker([warehouse, support], install_signal_handlers=False).run(idle_exit_seconds=1.0)
    # then: every message handled once by each consumer, each bad one parked in its own queue
    assert (warehouse.stats.handled, warehouse.stats.parked) == (3, 1)
    assert (support.stats.handled, support.stats.parked) == (3, 1)
    assert Reservation.objects.filter(order_id__in=orders, status="reserved").count() == 3
    assert CustomerContact.objects.filter(order_id__in=orders).exclude(email="").count() == 3
    assert ProcessedMessage.objects.filter(consumer="warehouse.new_orders").count() == 3
    assert ProcessedMessage.objects.filter(consumer="support.support_requests").count() == 3
    assert sorted(DeadLetter.objects.values_list("queue", "message_id")) == [
        ("new_orders", "bad"), ("support_requests", "bad")]
    assert depth(broker, "new_orders") == depth(broker, "support_requests") == 0
    # and each queue has its heartbeat, stopped cleanly
    beats = WorkerHeartbeat.objects.filter(kind=WorkerHeartbeat.Kind.CONSUMER, stopped_at__isnull=False)
    assert sorted(beats.values_list("queue", "messages")) == [("new_orders", 4), ("support_requests", 4)]


def test_a_worker_that_stops_hands_back_what_it_received_and_did_not_handle(catalogue, broker):
    # given: five messages in each of two queues, all of them sent to the worker at once (prefetch 10)
    for i in range(5):
        body = json.dumps(order_placed_payload(str(uuid.uuid4()))).encode()
        publish(broker, "new_orders", body, message_id=f"n{i}")
        publish(broker, "support_requests", body, message_id=f"s{i}")
    queue_workers = [QueueWorker(queue, prefetch=10, install_signal_handlers=False)
                     for queue in ("new_orders", "support_requests")]
    # when: it stops after four
    Worker(queue_workers, install_signal_handlers=False).run(max_messages=4)
    # then: four handled (and acknowledged), the six others back in their queues
    assert sum(q.stats.handled for q in queue_workers) == 4
    assert ProcessedMessage.objects.count() == 4
    assert depth(broker, "new_orders") + depth(broker, "support_requests") == 6


def test_the_consume_command_takes_several_queues_and_refuses_unknown_or_repeated_ones(catalogue, broker, capsys):
    # given
    order_id = str(uuid.uuid4())
    body = json.dumps(order_placed_payload(order_id)).encode()
    publish(broker, "new_orders", body, message_id="one")
    publish(broker, "support_requests", body, message_id="one")
    # when
    call_command("consume", "new_orders", "support_requests", "--idle-exit", "1")
    # then
    out = capsys.readouterr().out
    assert "worker new_orders stopped: handled=1 " in out
    assert "worker support_requests stopped: handled=1 " in out
    with pytest.raises(CommandError, match="no_such_queue"):
        call_command("consume", "new_orders", "no_such_queue", "--idle-exit", "1")
    with pytest.raises(CommandError, match="twice"):
        call_command("consume", "new_orders", "new_orders", "--idle-exit", "1")


def test_the_procfile_consumes_every_queue_exactly_once():
    # given: the Procfile's processes, as honcho (make run, the demo, the benchmarks) reads them
    processes = parse_procfile((settings.BASE_DIR / "Procfile").read_text()).processes
    # when
    consumed = [queue for command in processes.values() if " manage.py consume " in f" {command} "
                for queue in command.split(" consume ", 1)[1].split() if not queue.startswith("-")]
    # then: the product's queues and the demo's actors (SIM_ACTORS is on here), each once
    assert sorted(consumed) == sorted(topology.work_queues())

"""Every message of one order carries the trace id of the request that placed it (real processes)."""

import copy

import pytest

from messaging.models import OutboxMessage
from messaging.tracing import trace_id_of
from shop.models import Order
from simulation.demo_data import SEED_ORDER
from tests.harness import wait_until

pytestmark = pytest.mark.e2e

TRACE = "0af7651916cd43dd8448eb211c80319c"


def test_every_message_of_a_delivered_order_carries_the_request_trace(system, catalogue, customer_client):
    # given
    system.start_all()
    body = copy.deepcopy(SEED_ORDER)
    # when: placed with a trace context of the client's
    response = customer_client.post("/api/orders/", body, format="json",
                                    HTTP_TRACEPARENT=f"00-{TRACE}-b7ad6b7169203331-01")
    order_id = response.json()["order_id"]
    try:
        wait_until(lambda: Order.objects.get(pk=order_id).status == "delivered", timeout=90, what="delivered")
    except AssertionError:
        print(system.log_tail())
        raise
    # then: every message of the order -- events, commands, timers, the simulated actors' -- in that trace
    traces = [trace_id_of(tp) for tp in OutboxMessage.objects.filter(correlation_id=order_id)
              .values_list("traceparent", flat=True)]
    assert len(traces) >= 20
    assert set(traces) == {TRACE}
    print(f"{len(traces)} messages of order {order_id}, all in trace {TRACE}")

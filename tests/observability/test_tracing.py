"""One trace per order (OpenTelemetry): the request's trace id travels in every message that follows."""

from __future__ import annotations

import copy

import pytest
from django.test import Client
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from messaging.consumer import deliver
from messaging.envelope import decode
from messaging.lease import outbox_lease
from messaging.models import OutboxMessage
from messaging.registry import route_for
from messaging.relay import message_properties
from messaging.tracing import trace_id_of
from observability.tracing import span_processor_add
from simulation.demo_data import SEED_ORDER

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    span_processor_add(SimpleSpanProcessor(exporter))
    return exporter


def place(customer_client, **headers) -> str:
    body = copy.deepcopy(SEED_ORDER)
    response = customer_client.post("/api/orders/", body, format="json", **headers)
    assert response.status_code == 201, response.content
    return response.json()["order_id"]


def relayed(order_id: str, type: str):
    """The order's unsent ``type`` message as the relay would send it, decoded as a worker would."""
    from django.db import transaction

    with transaction.atomic():
        (row,) = [r for r in outbox_lease(limit=100) if r.correlation_id == order_id and r.type == type]
        OutboxMessage.objects.filter(id=row.id).update(published_at="2026-01-01T00:00:00Z")
    return row, message_properties(row)


def test_the_request_span_and_every_message_it_causes_share_one_trace(spans, catalogue, customer_client):
    # given
    spans.clear()
    order_id = place(customer_client)
    request_span = next(s for s in spans.get_finished_spans() if s.kind.name == "SERVER")
    trace_id = format(request_span.context.trace_id, "032x")
    # when: the warehouse handles order.placed (as a worker does, from the relayed message)
    row, properties = relayed(order_id, "order.placed")
    assert properties.headers["traceparent"] == row.traceparent
    deliver(route_for("new_orders"), decode("new_orders", properties, row.body))
    # then: the event written in the request and the answer written by the handler carry its trace
    assert trace_id_of(OutboxMessage.objects.get(correlation_id=order_id, type="order.placed").traceparent) == trace_id
    answer = OutboxMessage.objects.get(correlation_id=order_id, type="order.confirmed")
    assert trace_id_of(answer.traceparent) == trace_id
    handler_span = next(s for s in spans.get_finished_spans() if s.name == "handle order.placed")
    assert format(handler_span.context.trace_id, "032x") == trace_id
    assert handler_span.parent.span_id == request_span.context.span_id
    # and the waits of the message are spans of the same trace
    waits = [s.name for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    assert "queue wait new_orders" in waits


def test_a_client_trace_is_continued(spans, catalogue, customer_client):
    # given: the client sends its own trace context
    order_id = place(customer_client, HTTP_TRACEPARENT=f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01")
    # then
    row = OutboxMessage.objects.get(correlation_id=order_id, type="order.placed")
    assert trace_id_of(row.traceparent) == CLIENT_TRACE


def test_the_journey_shows_the_trace_id(spans, catalogue, customer_client, django_user_model, settings):
    # given
    settings.OTEL_TRACE_URL = "http://jaeger.local:16686/trace/{trace_id}"
    order_id = place(customer_client, HTTP_TRACEPARENT=f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01")
    staff = django_user_model.objects.create_user("ops-trace", password="pw-trace-1", is_staff=True)
    client = Client()
    client.force_login(staff)
    # when
    data = client.get(f"/dashboard/orders/{order_id}/journey.json").json()
    page = client.get(f"/dashboard/orders/{order_id}/journey/").content.decode()
    # then
    assert data["trace_id"] == CLIENT_TRACE
    assert f'href="http://jaeger.local:16686/trace/{CLIENT_TRACE}"' in page

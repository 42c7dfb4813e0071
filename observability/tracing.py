"""OpenTelemetry in every process: a tracer provider (so every request and message has a real
trace id to pass on: the request's span is ``config.middleware.TraceMiddleware``'s, a handler's
``messaging.tracing``'s) and an OTLP exporter when one is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT``); with none, spans are made and dropped, nothing is sent."""

from __future__ import annotations

from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from messaging import tracing as message_tracing

_provider: TracerProvider | None = None


def tracing_setup() -> TracerProvider:
    """Once per process (AppConfig.ready): the provider and the exporter, if any."""
    global _provider
    if _provider is not None:
        return _provider
    _provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
        span_processor_add(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(_provider)
    return _provider


def span_processor_add(processor: SpanProcessor) -> None:
    """Send this process's spans somewhere (an exporter's processor): from now on the waits of
    each message are recorded as spans too."""
    tracing_setup().add_span_processor(processor)  # the provider, made first if it is not yet
    message_tracing.exporting = True


def trace_url(trace_id: str) -> str:
    """Where a person can open the trace (``OTEL_TRACE_URL`` with ``{trace_id}``), or ""."""
    return settings.OTEL_TRACE_URL.replace("{trace_id}", trace_id) if settings.OTEL_TRACE_URL and trace_id else ""

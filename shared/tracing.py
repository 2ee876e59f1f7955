"""OpenTelemetry tracing across NATS hops.

The producer injects W3C `traceparent`/`tracestate` into the message headers
and the consumer extracts them, so one trace follows a message from service
to service. Spans carry the messaging semantic-convention attributes
(`messaging.system`, `messaging.destination.name`, `messaging.operation.type`,
`messaging.message.id`). Spans are exported over OTLP/HTTP only when
`OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-specific variable) is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

logger = logging.getLogger(__name__)

TRACER_NAME = "continuum"

_configured = False


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Install a tracer provider for this process; export only when an OTLP endpoint is configured.

    Without an endpoint a provider still runs, so trace ids exist and
    propagate (the RAG reply returns one), but nothing leaves the process.
    """
    global _configured
    if _configured:
        return None

    provider = TracerProvider(resource=Resource.create({"service.name": f"continuum-{service_name}"}))
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        logger.info("exporting traces over OTLP", extra={"endpoint": endpoint})

    trace.set_tracer_provider(provider)
    _configured = True
    return provider


_tracer_cache: tuple[object, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """Return the Continuum tracer, cached per provider because `get_tracer` is slow on every span."""
    global _tracer_cache
    provider = trace.get_tracer_provider()
    if _tracer_cache is None or _tracer_cache[0] is not provider:
        _tracer_cache = (provider, trace.get_tracer(TRACER_NAME))
    return _tracer_cache[1]


def _attributes(subject: str, operation: str, message_id: str | None) -> dict[str, str]:
    attributes = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.type": operation,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


@contextlib.contextmanager
def producer_span(subject: str, headers: dict[str, str], message_id: str | None = None) -> Iterator[Span]:
    """Open a PRODUCER span for a publish and inject its context into `headers`.

    The span is not made current: nothing runs inside a publish that needs it
    as a parent, and attaching a context costs a noticeable share of a
    publish on the hot path.
    """
    span = tracer().start_span(f"send {subject}", kind=SpanKind.PRODUCER, attributes=_attributes(subject, "send", message_id))
    try:
        propagate.inject(headers, context=trace.set_span_in_context(span))
        yield span
    except BaseException as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, str(exc)))
        raise
    finally:
        span.end()


@contextlib.contextmanager
def consumer_span(
    subject: str, headers: Mapping[str, str] | None, message_id: str | None = None, operation: str = "process"
) -> Iterator[Span]:
    """Open a CONSUMER span whose parent is the context carried in `headers`.

    The extracted context is attached for the duration of the block and
    always detached in `finally`, even when the handler raises.
    """
    parent = propagate.extract(dict(headers or {}))
    token = otel_context.attach(parent)
    try:
        with tracer().start_as_current_span(
            f"{operation} {subject}", kind=SpanKind.CONSUMER, attributes=_attributes(subject, operation, message_id)
        ) as span:
            yield span
    finally:
        otel_context.detach(token)


def current_trace_id() -> str:
    """Return the current trace id as 32 hex digits, or '' outside a span."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return ""
    return format(span_context.trace_id, "032x")


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current trace context to `headers` (for core request/reply messages)."""
    propagate.inject(headers)
    return headers

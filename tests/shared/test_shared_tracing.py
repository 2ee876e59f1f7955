"""Trace context crosses a JetStream hop through the message headers."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from continuum.shared import bus, tracing
from continuum.shared.config import JetStreamSettings
from continuum.shared.envelope import CloudEvent
from continuum.shared.schemas import Event
from continuum.shared.topology import ConsumerSpec, ProvisionReport, StreamSpec, ensure_stream


class Hop(Event, kw_only=True):
    CE_TYPE = "continuum.test.hop.v1"

    n: int


@pytest.fixture(scope="module")
def exporter():
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(provider)
    return spans


async def test_trace_context_survives_hop(js, unique, exporter):
    stream = StreamSpec(f"TRACE_{unique}", (f"trace.{unique}",), "test")
    await ensure_stream(js, stream, JetStreamSettings(), ProvisionReport())
    seen: list[str] = []

    async def handle(event: CloudEvent[Hop], msg) -> None:
        seen.append(tracing.current_trace_id())

    consumer = bus.DurableConsumer(js, ConsumerSpec(stream.name, f"c{unique}", "test"), Hop, handle, service="tests")
    task = asyncio.create_task(consumer.run())

    with tracing.tracer().start_as_current_span("client request") as root:
        sent_trace = format(root.get_span_context().trace_id, "032x")
        await bus.publish(js, f"trace.{unique}", Hop(n=1), source="tests")

    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.05)
    await consumer.stop()
    task.cancel()

    spans = {span.kind: span for span in exporter.get_finished_spans() if f"trace.{unique}" in span.name}
    assert seen == [sent_trace]
    assert spans[SpanKind.PRODUCER].attributes["messaging.system"] == "nats"
    assert spans[SpanKind.CONSUMER].attributes["messaging.destination.name"] == f"trace.{unique}"
    assert spans[SpanKind.CONSUMER].parent.span_id == spans[SpanKind.PRODUCER].context.span_id

"""JetStream publish and pull+ack rates through the bus helpers, against raw nats-py.

Both sides publish the same small event, one at a time with a PubAck wait,
to the same stream on the same server, and consume with a pull consumer
that acks every message. The ratio shows what the envelope, tracing and
consumer loop cost.
"""

from __future__ import annotations

import asyncio

import nats

from bench.harness import Result, Timer, nats_server
from continuum.shared import bus
from continuum.shared.config import JetStreamSettings, NatsSettings, Settings
from continuum.shared.envelope import CloudEvent
from continuum.shared.schemas import Event, encode
from continuum.shared.topology import ConsumerSpec, ProvisionReport, StreamSpec, ensure_stream


class BenchEvent(Event, kw_only=True):
    CE_TYPE = "continuum.bench.event.v1"

    n: int
    body: str


async def _raw_publish(js, subject: str, count: int) -> float:
    timer = Timer()
    for n in range(count):
        await js.publish(subject, encode(BenchEvent(n=n, body="x" * 100)))
    return count / timer.elapsed


async def _bus_publish(js, subject: str, count: int) -> float:
    timer = Timer()
    for n in range(count):
        await bus.publish(js, subject, BenchEvent(n=n, body="x" * 100), source="bench")
    return count / timer.elapsed


async def _raw_consume(js, stream: str, subject: str, count: int) -> float:
    subscription = await js.pull_subscribe(subject, durable="raw", stream=stream)
    received = 0
    timer = Timer()
    while received < count:
        for msg in await subscription.fetch(min(256, count - received), timeout=5):
            await msg.ack()
            received += 1
    return count / timer.elapsed


async def _bus_consume(js, stream: str, subject: str, count: int) -> float:
    done = asyncio.Event()
    received = 0

    async def handle(event: CloudEvent[BenchEvent], msg) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    spec = ConsumerSpec(stream, "helper", "bench", filter_subjects=(subject,))
    consumer = bus.DurableConsumer(js, spec, BenchEvent, handle, service="bench", concurrency=256)
    timer = Timer()
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(done.wait(), 120)
    rate = count / timer.elapsed
    await consumer.stop()
    task.cancel()
    return rate


async def run(quick: bool) -> list[Result]:
    count = 2_000 if quick else 20_000
    with nats_server() as server:
        nc = await bus.connect(Settings(nats=NatsSettings(url=server.url)), name="bench")
        js = nc.jetstream()
        for name in ("RAW", "HELPER"):
            await ensure_stream(js, StreamSpec(name, (f"bench.{name.lower()}",), "bench"), JetStreamSettings(), ProvisionReport())

        raw_pub = await _raw_publish(js, "bench.raw", count)
        bus_pub = await _bus_publish(js, "bench.helper", count)
        raw_sub = await _raw_consume(js, "RAW", "bench.raw", count)
        bus_sub = await _bus_consume(js, "HELPER", "bench.helper", count)
        await nc.close()

    return [
        Result("JetStream publish with PubAck", bus_pub, "msg/s", "raw nats-py js.publish", raw_pub,
               goal="ratio >= 0.7", met=bus_pub / raw_pub >= 0.7, notes=f"{count} sequential publishes of a 100-byte event"),
        Result("pull + decode + ack", bus_sub, "msg/s", "raw nats-py fetch + ack", raw_sub,
               goal="ratio >= 0.7", met=bus_sub / raw_sub >= 0.7, notes="DurableConsumer with concurrency 256 vs fetch(256) loop"),
    ]

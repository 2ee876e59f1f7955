"""Bus helpers against a real nats-server: publish de-dup, dead letters, restarts."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import TransientError
from continuum.shared.schemas import DeadLetter, Event, decode
from continuum.shared.topology import ConsumerSpec, StreamSpec, ensure_stream, ProvisionReport


class Ping(Event, kw_only=True):
    CE_TYPE = "continuum.test.ping.v1"

    n: int


async def make_stream(js, settings, name: str) -> StreamSpec:
    spec = StreamSpec(name, (f"test.{name}.*",), "test stream")
    await ensure_stream(js, spec, settings.jetstream, ProvisionReport())
    return spec


async def test_publish_duplicate_msg_id_stored_once(js, settings, unique):
    spec = await make_stream(js, settings, f"DEDUP_{unique}")
    subject = f"test.{spec.name}.a"

    first = await bus.publish(js, subject, Ping(n=1), source="tests", event_id="same-id")
    second = await bus.publish(js, subject, Ping(n=1), source="tests", event_id="same-id")

    info = await js.stream_info(spec.name)
    assert first.duplicate is not True
    assert second.duplicate is True
    assert info.state.messages == 1


async def test_garbage_goes_to_dlq_and_consumer_continues(nc, js, settings, unique):
    spec = await make_stream(js, settings, f"GARBAGE_{unique}")
    received: list[int] = []

    async def handle(event: CloudEvent[Ping], msg) -> None:
        received.append(event.data.n)

    consumer_spec = ConsumerSpec(spec.name, f"c-{unique}", "test consumer")
    consumer = bus.DurableConsumer(js, consumer_spec, Ping, handle, service="tests")
    dlq = await js.subscribe(subjects.dlq(spec.name))

    await js.publish(f"test.{spec.name}.x", b"\x00\xffnot json")
    await js.publish(f"test.{spec.name}.x", b'{"n": 7}')

    task = asyncio.create_task(consumer.run())
    letter_msg = await dlq.next_msg(timeout=10)
    for _ in range(100):
        if received:
            break
        await asyncio.sleep(0.05)
    await consumer.stop()
    task.cancel()

    letter = decode(letter_msg.data, DeadLetter)
    assert received == [7]
    assert letter.subject == f"test.{spec.name}.x"
    assert letter.payload_encoding == "base64"
    assert "not valid JSON" in letter.error
    assert letter.stream == spec.name


async def test_transient_failures_dead_letter_after_max_deliver(js, settings, unique):
    spec = await make_stream(js, settings, f"POISON_{unique}")
    attempts: list[int] = []

    async def handle(event: CloudEvent[Ping], msg) -> None:
        attempts.append(msg.metadata.num_delivered)
        raise TransientError("backend down", delay=0.05)

    consumer_spec = ConsumerSpec(spec.name, f"c-{unique}", "test consumer", max_deliver=3, backoff=(0.05,))
    consumer = bus.DurableConsumer(js, consumer_spec, Ping, handle, service="tests")
    dlq = await js.subscribe(subjects.dlq(spec.name))
    await bus.publish(js, f"test.{spec.name}.p", Ping(n=1), source="tests")

    task = asyncio.create_task(consumer.run())
    letter = decode((await dlq.next_msg(timeout=10)).data, DeadLetter)
    await consumer.stop()
    task.cancel()

    assert attempts == [1, 2, 3]
    assert letter.delivery_count == 3
    assert "backend down" in letter.error


async def test_consumer_survives_server_restart(nats_server_factory, tmp_path, unique):
    store = tmp_path / "restart-store"
    server = nats_server_factory(store_dir=store)
    port = server.port
    settings = Settings(nats=NatsSettings(url=server.url, reconnect_wait_s=0.1))
    nc = await bus.connect(settings, name="restart-test")
    js = bus.jetstream(nc)
    spec = await make_stream(js, settings, f"RESTART_{unique}")
    received: list[int] = []

    async def handle(event: CloudEvent[Ping], msg) -> None:
        received.append(event.data.n)

    consumer = bus.DurableConsumer(
        js, ConsumerSpec(spec.name, "durable", "restart test"), Ping, handle, service="tests", fetch_timeout=0.3
    )
    task = asyncio.create_task(consumer.run())
    for n in range(5):
        await bus.publish(js, f"test.{spec.name}.a", Ping(n=n), source="tests")
    for _ in range(100):
        if len(received) == 5:
            break
        await asyncio.sleep(0.05)

    server.stop()
    restarted = nats_server_factory(store_dir=store, port=port)
    await asyncio.sleep(0.5)
    for n in range(5, 10):
        for _ in range(50):
            try:
                await bus.publish(js, f"test.{spec.name}.a", Ping(n=n), source="tests", event_id=f"p{n}", timeout=1)
                break
            except Exception:
                await asyncio.sleep(0.2)
    for _ in range(200):
        if len(received) >= 10:
            break
        await asyncio.sleep(0.05)

    await consumer.stop()
    task.cancel()
    await nc.close()
    assert restarted.port == port
    assert sorted(set(received)) == list(range(10))
    assert len(received) == 10

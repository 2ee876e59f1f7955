"""The shipped NATS configs and permissions on a real hub cluster and leaf node."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import pytest

from continuum.shared import subjects
from continuum.shared.topology import ConsumerSpec, consumer_config

pytestmark = pytest.mark.timeout(90)


class ErrorLog:
    """Collects the asynchronous errors the server sends to one connection."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.changed = asyncio.Event()

    async def record(self, exc: Exception) -> None:
        # nats-py lowercases the server's -ERR text.
        self.errors.append(str(exc).lower())
        self.changed.set()

    async def wait_for(self, text: str, timeout: float = 5.0) -> str:
        async def _search() -> str:
            while True:
                for error in self.errors:
                    if text.lower() in error:
                        return error
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(_search(), timeout)


async def test_agent_publish_other_node_telemetry_rejected(provisioned):
    errors = ErrorLog()
    agent = await provisioned.connect("agent-edge-1", leaf=True, error_cb=errors.record)
    try:
        await agent.publish(subjects.telemetry("edge-2"), b"{}")
        await agent.flush()
        error = await errors.wait_for("Permissions Violation")
    finally:
        await agent.close()

    assert 'publish to "ctm.telemetry.edge-2"' in error


async def test_agent_subscribe_other_node_placements_rejected(provisioned):
    errors = ErrorLog()
    agent = await provisioned.connect("agent-edge-1", leaf=True, error_cb=errors.record)
    try:
        await agent.subscribe(subjects.placement("edge-2"))
        await agent.flush()
        error = await errors.wait_for("Permissions Violation")
    finally:
        await agent.close()

    assert 'subscription to "ctm.placement.edge-2"' in error


async def test_agent_consumer_for_other_node_rejected(provisioned):
    errors = ErrorLog()
    agent = await provisioned.connect("agent-edge-1", leaf=True, error_cb=errors.record)
    js = agent.jetstream(domain="hub")
    spec = ConsumerSpec("PLACEMENTS", "agent-edge-2", "stolen", filter_subjects=(subjects.placement("edge-2"),))
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer("PLACEMENTS", consumer_config(spec), timeout=1.0)
        error = await errors.wait_for("Permissions Violation")
    finally:
        await agent.close()

    assert "$js.hub.api.consumer.create.placements.agent-edge-2" in error


async def test_agent_own_durable_with_wider_filter_rejected(provisioned):
    errors = ErrorLog()
    agent = await provisioned.connect("agent-edge-1", leaf=True, error_cb=errors.record)
    js = agent.jetstream(domain="hub")
    spec = ConsumerSpec("PLACEMENTS", "agent-edge-1", "too wide", filter_subjects=(subjects.ALL_PLACEMENTS,))
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer("PLACEMENTS", consumer_config(spec), timeout=1.0)
        error = await errors.wait_for("Permissions Violation")
    finally:
        await agent.close()

    assert "consumer.create.placements.agent-edge-1.ctm.placement.*" in error


async def test_agent_reads_own_placements_through_leaf(provisioned):
    scheduler = await provisioned.connect("scheduler")
    agent = await provisioned.connect("agent-edge-1", leaf=True)
    try:
        ack = await scheduler.jetstream().publish(subjects.placement("edge-1"), b'{"probe": "own"}')
        assert ack.stream == "PLACEMENTS"

        js = agent.jetstream(domain="hub")
        spec = ConsumerSpec("PLACEMENTS", "agent-edge-1", "edge-1", filter_subjects=(subjects.placement("edge-1"),))
        await js.add_consumer("PLACEMENTS", consumer_config(spec))
        subscription = await js.pull_subscribe_bind(durable="agent-edge-1", stream="PLACEMENTS")
        messages = await subscription.fetch(10, timeout=5.0)
        for message in messages:
            await message.ack_sync()
    finally:
        await agent.close()
        await scheduler.close()

    assert [message.subject for message in messages][-1] == "ctm.placement.edge-1"
    assert messages[-1].data == b'{"probe": "own"}'


async def test_agent_telemetry_from_leaf_stored_in_hub(provisioned):
    agent = await provisioned.connect("agent-edge-2", leaf=True)
    scheduler = await provisioned.connect("scheduler")
    try:
        ack = await agent.jetstream(domain="hub").publish(subjects.telemetry("edge-2"), b'{"probe": "telemetry"}')
        stored = await scheduler.jetstream().get_last_msg("TELEMETRY", subjects.telemetry("edge-2"))
    finally:
        await scheduler.close()
        await agent.close()

    assert ack.stream == "TELEMETRY"
    assert ack.domain == "hub"
    assert stored.data == b'{"probe": "telemetry"}'


async def test_function_on_leaf_invocable_from_hub(provisioned):
    agent = await provisioned.connect("agent-edge-1", leaf=True)
    caller = await provisioned.connect("admin")

    async def _handle_invocation(msg):
        await msg.respond(b"echo:" + msg.data)

    try:
        await agent.subscribe(subjects.function("echo"), queue=subjects.function("echo"), cb=_handle_invocation)
        await agent.flush()
        reply = await _request_until_routed(caller, subjects.function("echo"), b"hi")
    finally:
        await caller.close()
        await agent.close()

    assert reply == b"echo:hi"


async def _request_until_routed(nc, subject: str, payload: bytes, attempts: int = 50) -> bytes:
    """Send a request, retrying while the subscription's interest travels from the leaf to the hub."""
    for _ in range(attempts):
        try:
            return (await nc.request(subject, payload, timeout=1.0)).data
        except nats.errors.NoRespondersError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"no responder on {subject} after {attempts} attempts")


async def test_agent_answers_ping_from_other_agent(provisioned):
    edge_1 = await provisioned.connect("agent-edge-1", leaf=True)
    edge_2 = await provisioned.connect("agent-edge-2", leaf=True)

    async def _handle_ping(msg):
        await msg.respond(b"edge-1")

    try:
        await edge_1.subscribe(subjects.agent_ping("edge-1"), cb=_handle_ping)
        await edge_1.flush()
        reply = await _request_until_routed(edge_2, subjects.agent_ping("edge-1"), b"")
    finally:
        await edge_2.close()
        await edge_1.close()

    assert reply == b"edge-1"


async def test_scheduler_uses_its_buckets_and_streams(provisioned):
    errors = ErrorLog()
    scheduler = await provisioned.connect("scheduler", error_cb=errors.record)
    js = scheduler.jetstream()
    try:
        lease = await js.key_value("ctm-scheduler")
        revision = await lease.put("leader", b"scheduler-test")
        entry = await lease.get("leader")
        bindings = await js.key_value("ctm-bindings")
        await bindings.put("probe", b"{}")
        await bindings.delete("probe")

        await js.publish(subjects.PLACEMENT_FAILED, b'{"probe": "failed"}')
        lifecycle = await js.subscribe(subjects.ALL_LIFECYCLE, ordered_consumer=True)
        await lifecycle.unsubscribe()
        await scheduler.flush()
    finally:
        await scheduler.close()

    assert entry.revision == revision
    assert entry.value == b"scheduler-test"
    assert errors.errors == []


async def test_scheduler_cannot_write_guard_policies(provisioned):
    errors = ErrorLog()
    scheduler = await provisioned.connect("scheduler", error_cb=errors.record)
    try:
        await scheduler.publish("$KV.ctm-guard-policies.default", b"{}")
        await scheduler.flush()
        error = await errors.wait_for("Permissions Violation")
    finally:
        await scheduler.close()

    assert "$kv.ctm-guard-policies.default" in error


async def test_wrong_password_rejected(provisioned):
    with pytest.raises(nats.errors.Error):
        await nats.connect(
            f"nats://127.0.0.1:{provisioned.leaf.port}",
            user="agent-edge-1",
            password="p-wrong",
            max_reconnect_attempts=0,
            allow_reconnect=False,
        )


async def test_hub_jetstream_domain_is_hub(provisioned):
    admin = await provisioned.connect("admin")
    try:
        info = await admin.jetstream().account_info()
        stream = await admin.jetstream().stream_info("PLACEMENTS")
    finally:
        await admin.close()

    assert info.domain == "hub"
    assert stream.config.num_replicas == 3

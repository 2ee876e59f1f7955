"""Provisioning the declared topology against a fresh nats-server."""

from __future__ import annotations

import pytest

from continuum.shared import bus
from continuum.shared.config import JetStreamSettings, NatsSettings, Settings
from continuum.shared.topology import BUCKETS, CONSUMERS, STREAMS, provision


@pytest.fixture
async def fresh_js(nats_server_factory):
    server = nats_server_factory()
    nc = await bus.connect(Settings(nats=NatsSettings(url=server.url)), name="topology-test")
    yield bus.jetstream(nc)
    await nc.close()


async def test_provision_creates_everything_declared(fresh_js):
    report = await provision(fresh_js, JetStreamSettings())

    created = {(kind, name) for kind, name, action in report.actions if action == "created"}
    assert {("stream", spec.name) for spec in STREAMS} <= created
    assert {("consumer", f"{spec.stream}/{spec.durable}") for spec in CONSUMERS} <= created
    assert len([entry for entry in created if entry[0] in {"key-value bucket", "object store"}]) == len(BUCKETS)


async def test_provision_twice_changes_nothing(fresh_js):
    await provision(fresh_js, JetStreamSettings())

    second = await provision(fresh_js, JetStreamSettings())

    assert second.changed == []
    assert len(second.actions) == len(STREAMS) + len(CONSUMERS) + len(BUCKETS)


async def test_provision_updates_changed_limits(fresh_js):
    await provision(fresh_js, JetStreamSettings())

    report = await provision(fresh_js, JetStreamSettings(duplicate_window_s=30.0))

    updated = {name for kind, name, action in report.actions if action == "updated"}
    assert "TELEMETRY" in updated
    info = await fresh_js.stream_info("TELEMETRY")
    assert info.config.duplicate_window == pytest.approx(30.0)
    assert "HOOKS" not in updated


async def test_streams_apply_declared_limits(fresh_js):
    await provision(fresh_js, JetStreamSettings(max_message_bytes=512 * 1024))

    telemetry = await fresh_js.stream_info("TELEMETRY")
    ingest = await fresh_js.stream_info("INGEST")

    assert telemetry.config.max_msgs_per_subject == 16
    assert telemetry.config.max_msg_size == 512 * 1024
    assert ingest.config.retention == "workqueue"


async def test_request_subjects_not_captured_by_streams(fresh_js):
    """A stream that captured a request subject would answer callers with a PubAck."""
    await provision(fresh_js, JetStreamSettings())

    for subject in ("ctm.fn.hello", "ctm.embed", "ctm.api.deploy", "ctm.vector.query", "ctm.guard.check", "ctm.rag.ask", "ctm.agent.n1.ping"):
        with pytest.raises(Exception):
            await fresh_js.find_stream_name_by_subject(subject)

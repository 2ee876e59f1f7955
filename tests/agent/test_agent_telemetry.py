"""Telemetry, peer pings and lifecycle events, including SIGTERM of a real agent process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import psutil
import pytest

from continuum.shared import subjects
from continuum.shared.schemas import decode
from continuum.shared.schemas.telemetry import NodeLifecycle, Telemetry
from continuum.shared.schemas.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(60)


async def _collect(nc, subject: str, schema, count: int, timeout: float = 10.0):
    received = []
    done = asyncio.Event()

    async def _handle(msg) -> None:
        received.append(decode(msg.data, schema))
        if len(received) >= count:
            done.set()

    subscription = await nc.subscribe(subject, cb=_handle)
    try:
        await asyncio.wait_for(done.wait(), timeout)
    finally:
        await subscription.unsubscribe()
    return received


async def test_telemetry_matches_machine(unique, nc, start_agent, tmp_path):
    node = f"node-{unique}"
    await start_agent(node, zone="eu-1", site="lab", labels={"tier": "edge"}, reserved=_resources(500, 256))

    reports = await _collect(nc, subjects.telemetry(node), Telemetry, 3)
    last = reports[-1]

    assert last.cpu.cores == os.cpu_count()
    assert last.memory.total_bytes == psutil.virtual_memory().total
    assert 0 < last.memory.available_bytes <= last.memory.total_bytes
    assert len(last.cpu.load_avg) == 3
    assert last.disk is not None and last.disk.total_bytes == psutil.disk_usage(last.disk.path).total
    assert [r.seq for r in reports] == sorted(r.seq for r in reports)
    assert len({r.seq for r in reports}) == 3
    assert len({r.boot_id for r in reports}) == 1
    nats_rtt = [sample for sample in last.rtt if sample.kind == "nats"]
    assert len(nats_rtt) == 1 and nats_rtt[0].rtt_ms > 0
    assert last.zone == "eu-1" and last.site == "lab" and last.labels == {"tier": "edge"}
    assert set(last.runtimes) == {"function", "wasm"}
    assert last.capacity.cpu_millis == os.cpu_count() * 1000
    assert last.allocatable.cpu_millis == last.capacity.cpu_millis - 500
    assert last.allocatable.memory_mb == last.capacity.memory_mb - 256
    assert isinstance(last.gpus, list)


async def test_telemetry_counts_replicas_and_requests(unique, nc, start_agent, place, push_artifact, watch_status, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    await start_agent(node)
    spec = WorkloadSpec(name=name, artifact=name)
    await place(node, spec, f"{name}-r1")
    await place(node, spec, f"{name}-r2", generation=2)
    await status.wait_for(f"{name}-r1", "running")
    await status.wait_for(f"{name}-r2", "running")

    last = (await _collect(nc, subjects.telemetry(node), Telemetry, 1))[-1]

    assert last.replicas.total == 2
    assert last.replicas.by_state == {"running": 2}
    assert last.replicas.by_workload == {name: 2}
    assert last.allocatable.cpu_millis == last.capacity.cpu_millis - 2 * spec.resources.cpu_millis


async def test_peer_rtt_is_measured_through_ping(unique, nc, start_agent):
    first, second = f"a-{unique}", f"b-{unique}"
    await start_agent(second)
    await start_agent(first, peers=[second, f"gone-{unique}"])

    reports = await _collect(nc, subjects.telemetry(first), Telemetry, 2)
    peers = [sample for sample in reports[-1].rtt if sample.kind == "node"]

    assert [sample.target for sample in peers] == [second]
    assert peers[0].rtt_ms > 0


async def test_node_id_is_generated_and_kept(unique, nc, js, settings, tmp_path):
    from continuum.services.agent.service import AgentService
    from continuum.shared.runtime import ServiceContext

    state = str(tmp_path / "state")
    ids = []
    for _ in range(2):
        agent = AgentService({"state_dir": state})
        await agent.start(ServiceContext(name="agent", settings=settings, nc=nc, js=js))
        ids.append(agent.node_id)
        await agent.stop()

    assert ids[0] == ids[1]
    assert (Path(state) / "node_id").read_text().strip() == ids[0]


@pytest.mark.timeout(90)
async def test_sigterm_finishes_invocation_then_says_bye(unique, nc, js, nats_server, push_artifact, place, watch_status, call, function_source, tmp_path):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    lifecycle = []

    async def _record(msg) -> None:
        lifecycle.append(decode(msg.data, NodeLifecycle).event)

    watcher = await nc.subscribe(subjects.node_lifecycle(node), cb=_record)
    env = {**os.environ, "CONTINUUM_NATS_URL": nats_server.url}
    agent = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "continuum.services.agent", "--node-id", node, "--state-dir", str(tmp_path / "agent"), env=env
    )
    try:
        await place(node, WorkloadSpec(name=name, artifact=name), f"{name}-r1")
        await status.wait_for(f"{name}-r1", "running", timeout=30)
        in_flight = asyncio.create_task(call(name, {"action": "sleep", "seconds": 1.5}, timeout=20))
        await asyncio.sleep(0.4)
        agent.send_signal(signal.SIGTERM)
        reply = await in_flight
        code = await asyncio.wait_for(agent.wait(), 30)
    finally:
        if agent.returncode is None:
            agent.kill()
    await watcher.unsubscribe()

    assert reply["ok"] is True
    assert reply["result"]["echo"] == {"action": "sleep", "seconds": 1.5}
    assert code == 0
    assert lifecycle == ["hello", "drain", "bye"]
    assert status.states(f"{name}-r1")[-1] == "stopped"


def _resources(cpu_millis: int, memory_mb: int):
    from continuum.shared.schemas.common import Resources

    return Resources(cpu_millis=cpu_millis, memory_mb=memory_mb)

"""The scheduler and real agent processes end to end: deploy, invoke, a late node, a killed node.

The scheduler runs as `python -m continuum.services.scheduler` and each
agent as `python -m continuum.services.agent`, both configured only through
`CONTINUUM_*` variables and flags, so telemetry reaches the scheduler through
its real JetStream subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats.errors
import pytest
from scheduler_support import eventually

from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.natsserver import EmbeddedNatsServer
from continuum.shared.rpc import ApiCallError, call
from continuum.shared.schemas import EmptyRequest, NameRequest, OkReply, Placement, WorkloadSpec, decode
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest, NodeList, ScaleWorkloadRequest, WorkloadView
from continuum.shared.topology import provision

# Agents report every half second. A node is suspect after two silent intervals and lost after four.
INTERVAL_S = 0.5
SCHEDULER_ENV = {
    "CONTINUUM_SCHEDULER_SUSPECT_AFTER_INTERVALS": "2",
    "CONTINUUM_SCHEDULER_LOST_AFTER_INTERVALS": "4",
    "CONTINUUM_SCHEDULER_RECONCILE_INTERVAL_S": "0.1",
    "CONTINUUM_SCHEDULER_LEASE_TTL_S": "1.0",
}

# The worker's parent process is the agent that runs the replica, so the reply names the agent.
FUNCTION_SOURCE = b"""
import os


def handler(event):
    return {"echo": event, "agent_pid": os.getppid()}
"""


class ProcessCluster:
    """A scheduler process and agent processes against one nats-server."""

    def __init__(self, server: EmbeddedNatsServer, root: Path) -> None:
        self.server = server
        self.root = root
        self.env = {**os.environ, "CONTINUUM_NATS_URL": server.url, "CONTINUUM_LOG_FORMAT": "text"}
        self.processes: list[asyncio.subprocess.Process] = []
        self.agents: dict[str, asyncio.subprocess.Process] = {}

    async def open(self) -> None:
        settings = Settings(nats=NatsSettings(url=self.server.url, reconnect_wait_s=0.2))
        self.nc = await bus.connect(settings, name="tests-e2e")
        self.js = bus.jetstream(self.nc)
        await provision(self.js, settings.jetstream)

    async def start_scheduler(self, **env: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "continuum.services.scheduler", env={**self.env, **SCHEDULER_ENV, **env}
        )
        self.processes.append(process)

    async def start_agent(self, node_id: str) -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "continuum.services.agent",
            "--node-id", node_id, "--zone", "zone-a", "--state-dir", str(self.root / node_id),
            "--telemetry-interval", str(INTERVAL_S),
            env=self.env,
        )
        self.processes.append(process)
        self.agents[node_id] = process

    async def push(self, name: str, data: bytes) -> None:
        """Store an artifact as `continuum fn push` does."""
        store = await self.js.object_store("ctm-artifacts")
        await store.put(name, data)

    async def node_status(self) -> dict[str, str]:
        try:
            listing = await call(self.nc, subjects.api("nodes"), EmptyRequest(), NodeList, timeout=2.0)
        except (ApiCallError, TimeoutError, nats.errors.Error):
            return {}
        return {node.node_id: node.status for node in listing.nodes}

    async def replicas(self, name: str) -> dict[str, tuple[str, str]]:
        """Return replica id -> (node id, state) as the scheduler's API reports it."""
        try:
            view = await call(self.nc, subjects.api("get"), NameRequest(name=name), WorkloadView, timeout=2.0)
        except (ApiCallError, TimeoutError, nats.errors.Error):
            return {}
        return {replica.replica_id: (replica.node_id, replica.state) for replica in view.replicas}

    async def invoke(self, name: str, payload: object) -> dict[str, object]:
        response = await self.nc.request(subjects.function(name), json.dumps(payload).encode(), timeout=10.0)
        return json.loads(response.data)

    async def close(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        with contextlib.suppress(Exception):
            await self.nc.close()


@pytest.fixture
async def cluster(nats_server_factory, tmp_path: Path) -> AsyncIterator[ProcessCluster]:  # type: ignore[no-untyped-def]
    cluster = ProcessCluster(nats_server_factory(), tmp_path)
    await cluster.open()
    yield cluster
    await cluster.close()


async def wait_running(cluster: ProcessCluster, name: str, *, avoid: str | None = None, timeout: float = 30.0) -> dict[str, tuple[str, str]]:
    replicas: dict[str, tuple[str, str]] = {}

    async def check() -> bool:
        nonlocal replicas
        replicas = await cluster.replicas(name)
        return bool(replicas) and all(state == "running" and node != avoid for node, state in replicas.values())

    await eventually(check, timeout=timeout, interval=0.1)
    return replicas


@pytest.mark.timeout(120)
async def test_killed_agent_replica_runs_elsewhere(cluster: ProcessCluster) -> None:
    nodes = ["edge-1", "edge-2", "edge-3"]
    for node_id in nodes:
        await cluster.start_agent(node_id)
    await cluster.start_scheduler()
    await cluster.push("hello", FUNCTION_SOURCE)
    statuses: dict[str, str] = {}

    async def all_ready() -> bool:
        nonlocal statuses
        statuses = await cluster.node_status()
        return sorted(statuses) == nodes and set(statuses.values()) == {"ready"}

    await eventually(all_ready, timeout=40, interval=0.2)
    assert statuses == {node_id: "ready" for node_id in nodes}

    reply = await call(cluster.nc, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name="hello", artifact="hello", replicas=1)), DeployReply)
    assert reply.created
    placed = await wait_running(cluster, "hello")
    assert list(placed) == ["hello-0"]
    host, _ = placed["hello-0"]
    answer = await cluster.invoke("hello", {"n": 1})
    assert answer["ok"] is True
    assert answer["result"] == {"echo": {"n": 1}, "agent_pid": cluster.agents[host].pid}

    # Record every placement event from here on: a host that is only late must cause none.
    events: list[Placement] = []

    async def record(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.subject != subjects.PLACEMENT_FAILED:
            events.append(decode(msg.data, Placement))

    watcher = await cluster.nc.subscribe(subjects.ALL_PLACEMENTS, cb=record)

    # One interval late: the host is frozen for one interval, well below the four-interval lost threshold.
    cluster.agents[host].send_signal(signal.SIGSTOP)
    await asyncio.sleep(INTERVAL_S)
    cluster.agents[host].send_signal(signal.SIGCONT)
    await asyncio.sleep(6 * INTERVAL_S)

    statuses = await cluster.node_status()
    assert statuses[host] == "ready"
    assert (await cluster.replicas("hello"))["hello-0"] == (host, "running")
    assert events == []

    # Killed: the node is declared lost and the replica runs on another agent.
    cluster.agents[host].send_signal(signal.SIGKILL)
    moved = await wait_running(cluster, "hello", avoid=host, timeout=30)
    assert list(moved) == ["hello-0"]
    new_host, _ = moved["hello-0"]
    statuses = await cluster.node_status()
    answer = await cluster.invoke("hello", {"n": 2})
    await watcher.unsubscribe()

    assert statuses[host] == "lost"
    assert new_host in nodes
    assert new_host != host
    assert answer["ok"] is True
    assert answer["result"] == {"echo": {"n": 2}, "agent_pid": cluster.agents[new_host].pid}
    starts = [(event.node_id, event.replica_id) for event in events if event.action == "start"]
    assert starts == [(new_host, "hello-0")]


@pytest.mark.timeout(120)
async def test_missing_artifact_retried_until_pushed(cluster: ProcessCluster) -> None:
    await cluster.start_agent("solo")
    await cluster.start_scheduler(CONTINUUM_SCHEDULER_CRASH_BACKOFF_INITIAL_S="0.2", CONTINUUM_SCHEDULER_CRASH_BACKOFF_MAX_S="1.0")
    await eventually(lambda: _ready(cluster, "solo"), timeout=40, interval=0.2)
    await call(cluster.nc, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name="ghost", artifact="ghost", replicas=1)), DeployReply)

    # Each retry is a new start on the same node, which the agent applies and fails again.
    view: WorkloadView | None = None

    async def failed_twice() -> bool:
        nonlocal view
        view = await call(cluster.nc, subjects.api("get"), NameRequest(name="ghost"), WorkloadView, timeout=2.0)
        return bool(view.replicas) and view.replicas[0].failures >= 2

    await eventually(failed_twice, timeout=30, interval=0.2)
    assert view is not None
    replica = view.replicas[0]
    assert replica.failures >= 2
    assert replica.node_id == "solo"
    assert "artifact 'ghost' not found" in replica.error

    await cluster.push("ghost", FUNCTION_SOURCE)
    running = await wait_running(cluster, "ghost", timeout=30)
    answer = await cluster.invoke("ghost", {"n": 1})
    await call(cluster.nc, subjects.api("scale"), ScaleWorkloadRequest(name="ghost", replicas=2), OkReply)
    scaled = await wait_running(cluster, "ghost", timeout=30)

    assert running == {"ghost-0": ("solo", "running")}
    assert answer["ok"] is True
    assert scaled == {"ghost-0": ("solo", "running"), "ghost-1": ("solo", "running")}


async def _ready(cluster: ProcessCluster, node_id: str) -> bool:
    return (await cluster.node_status()).get(node_id) == "ready"

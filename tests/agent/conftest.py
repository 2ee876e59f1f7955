"""Fixtures for the edge agent: agents running in this process against the real nats-server,
artifacts in the real object store, and a recorder of replica status events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from continuum.services.agent.service import AgentService
from continuum.shared import bus, subjects
from continuum.shared.config import Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import decode
from continuum.shared.schemas.workload import Placement, WorkloadSpec, WorkloadStatus


class StatusRecorder:
    """Collects WorkloadStatus events of one workload from core NATS."""

    def __init__(self) -> None:
        self.events: list[WorkloadStatus] = []
        self._changed = asyncio.Event()

    async def handle(self, msg: Any) -> None:
        self.events.append(decode(msg.data, WorkloadStatus))
        self._changed.set()

    def states(self, replica_id: str) -> list[str]:
        return [event.state for event in self.events if event.replica_id == replica_id]

    async def wait_for(self, replica_id: str, state: str, *, count: int = 1, timeout: float = 15.0) -> WorkloadStatus:
        async def _wait() -> WorkloadStatus:
            while True:
                matching = [e for e in self.events if e.replica_id == replica_id and e.state == state]
                if len(matching) >= count:
                    return matching[count - 1]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(_wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"replica {replica_id} never reached {state!r}; states seen: {self.states(replica_id)}") from None


@pytest.fixture
async def watch_status(nc: bus.NATS) -> AsyncIterator[Callable[[str], Any]]:
    subscriptions = []

    async def watch(workload: str) -> StatusRecorder:
        recorder = StatusRecorder()
        subscriptions.append(await nc.subscribe(subjects.workload_status(workload), cb=recorder.handle))
        await nc.flush()
        return recorder

    yield watch
    for subscription in subscriptions:
        await subscription.unsubscribe()


@pytest.fixture
async def start_agent(nc: bus.NATS, js: bus.JetStreamContext, settings: Settings, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start AgentService instances in this process; each is stopped at the end of the test."""
    agents: list[AgentService] = []

    async def start(node_id: str, **overrides: Any) -> AgentService:
        overrides.setdefault("state_dir", str(tmp_path / f"agent-{node_id}"))
        overrides.setdefault("telemetry_interval_s", 0.2)
        agent = AgentService({"node_id": node_id, **overrides})
        context = ServiceContext(name="agent", settings=settings, nc=nc, js=js)
        await agent.start(context)
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        if not agent.draining:
            await agent.stop()


@pytest.fixture
def push_artifact(js: bus.JetStreamContext) -> Callable[[str, bytes], Any]:
    async def push(name: str, data: bytes) -> None:
        store = await js.object_store("ctm-artifacts")
        await store.put(name, bytes(data))

    return push


@pytest.fixture
def place(js: bus.JetStreamContext) -> Callable[..., Any]:
    """Publish a Placement by hand, as the scheduler would."""

    async def publish(
        node_id: str,
        spec: WorkloadSpec | None,
        replica_id: str,
        *,
        action: str = "start",
        epoch: int = 1,
        generation: int = 1,
        workload: str | None = None,
    ) -> Placement:
        placement = Placement(
            action=action,  # type: ignore[arg-type]
            node_id=node_id,
            workload=workload or (spec.name if spec else "unknown"),
            replica_id=replica_id,
            epoch=epoch,
            generation=generation,
            spec=spec,
        )
        await bus.publish(js, subjects.placement(node_id), placement, source="continuum/tests")
        return placement

    return publish


async def invoke(nc: bus.NATS, name: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
    response = await nc.request(subjects.function(name), json.dumps(payload).encode(), timeout=timeout)
    return json.loads(response.data)


FUNCTION_SOURCE = b'''
import asyncio
import os
import time


def handler(event):
    action = (event or {}).get("action")
    if action == "raise":
        raise ValueError("bad input: " + str(event.get("value")))
    if action == "hang":
        while True:
            time.sleep(1)
    if action == "crash":
        os._exit(3)
    if action == "sleep":
        time.sleep(event["seconds"])
    print("this line goes to stderr, not into the protocol")
    return {"echo": event, "pid": os.getpid()}


async def async_handler(event):
    await asyncio.sleep(0)
    return {"async": True, "echo": event}
'''


@pytest.fixture
def call(nc: bus.NATS) -> Callable[..., Any]:
    """Invoke a function on `ctm.fn.<name>` and return the decoded InvokeReply as a dict."""

    async def _call(name: str, payload: Any, timeout: float = 10.0) -> dict[str, Any]:
        return await invoke(nc, name, payload, timeout)

    return _call


@pytest.fixture
def function_source() -> bytes:
    return FUNCTION_SOURCE

"""Helpers for scheduler tests: telemetry builders, simulated agents and a scheduler harness."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from continuum.services.scheduler.service import SchedulerService
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import CpuStats, MemoryStats, Placement, Resources, RttSample, Taint, Telemetry, decode
from continuum.shared.topology import provision


def telemetry(
    node_id: str,
    *,
    seq: int = 1,
    boot_id: str = "boot-1",
    cpu_millis: int = 4000,
    memory_mb: int = 8192,
    gpus: int = 0,
    gpu_model: str = "NVIDIA A100",
    zone: str = "zone-a",
    site: str = "site-1",
    labels: dict[str, str] | None = None,
    taints: list[Taint] | None = None,
    rtt: dict[str, float] | None = None,
    interval_s: float = 1.0,
    sent_at: datetime | None = None,
) -> Telemetry:
    from continuum.shared.schemas import GpuStats

    return Telemetry(
        node_id=node_id,
        seq=seq,
        boot_id=boot_id,
        sent_at=sent_at or datetime.now(UTC),
        interval_s=interval_s,
        zone=zone,
        site=site,
        labels=labels or {},
        taints=taints or [],
        cpu=CpuStats(cores=4, utilization_pct=10.0),
        memory=MemoryStats(total_bytes=memory_mb << 20, available_bytes=memory_mb << 20),
        gpus=[GpuStats(index=i, model=gpu_model) for i in range(gpus)],
        rtt=[RttSample(target=target, kind="zone", rtt_ms=value) for target, value in (rtt or {}).items()],
        runtimes=["function", "wasm"],
        capacity=Resources(cpu_millis=cpu_millis, memory_mb=memory_mb, gpus=gpus),
        allocatable=Resources(cpu_millis=cpu_millis, memory_mb=memory_mb, gpus=gpus),
    )


class SimulatedAgent:
    """Publishes telemetry by hand every `interval_s` until stopped; `overrides` change the next reports."""

    def __init__(self, js: bus.JetStreamContext, node_id: str, interval_s: float, **overrides: object) -> None:
        self.js = js
        self.node_id = node_id
        self.interval_s = interval_s
        self.overrides = overrides
        self.seq = 0
        self.boot_id = uuid.uuid4().hex[:8]
        self._task: asyncio.Task[None] | None = None

    async def report(self) -> None:
        self.seq += 1
        message = telemetry(self.node_id, seq=self.seq, boot_id=self.boot_id, interval_s=self.interval_s, **self.overrides)  # type: ignore[arg-type]
        await bus.publish(self.js, subjects.telemetry(self.node_id), message, source="tests/sim-agent")

    def start(self) -> None:
        async def loop() -> None:
            for _ in range(100_000):
                await self.report()
                await asyncio.sleep(self.interval_s)

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class Harness:
    """A fresh nats-server, a client connection, and scheduler instances on their own connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.settings = Settings(nats=NatsSettings(url=url, reconnect_wait_s=0.2))
        self.services: list[tuple[SchedulerService, bus.NATS]] = []
        self.agents: list[SimulatedAgent] = []

    async def open(self) -> None:
        self.nc = await bus.connect(self.settings, name="tests")
        self.js = bus.jetstream(self.nc)
        await provision(self.js, self.settings.jetstream)

    async def start_scheduler(self, **overrides: object) -> SchedulerService:
        values = {"lease_ttl_s": 1.0, "reconcile_interval_s": 0.05, "rtt_violation_s": 0.5, "move_cooldown_s": 30.0, **overrides}
        nc = await bus.connect(self.settings, name=f"scheduler-{len(self.services)}")
        context = ServiceContext(name="scheduler", settings=self.settings, nc=nc, js=bus.jetstream(nc), instance_id=f"sched-{len(self.services)}")
        service = SchedulerService(SchedulerSettings(**values))  # type: ignore[arg-type]
        await service.start(context)
        self.services.append((service, nc))
        return service

    async def kill(self, service: SchedulerService) -> None:
        """Stop a scheduler abruptly: cancel its tasks and close its connection without releasing the lease."""
        for task in service._tasks:
            task.cancel()
        for candidate, nc in self.services:
            if candidate is service:
                await nc.close()
        self.services = [(s, n) for s, n in self.services if s is not service]

    def agent(self, node_id: str, interval_s: float = 0.2, **overrides: object) -> SimulatedAgent:
        agent = SimulatedAgent(self.js, node_id, interval_s, **overrides)
        self.agents.append(agent)
        agent.start()
        return agent

    async def placements(self) -> list[Placement]:
        """Every placement event stored in the PLACEMENTS stream, in order."""
        subscription = await self.js.subscribe(subjects.ALL_PLACEMENTS, ordered_consumer=True)
        found: list[Placement] = []
        info = await self.js.stream_info("PLACEMENTS")
        remaining = info.state.messages
        while remaining > 0:
            msg = await subscription.next_msg(timeout=2.0)
            remaining -= 1
            if msg.subject != subjects.PLACEMENT_FAILED:
                found.append(decode(msg.data, Placement))
        await subscription.unsubscribe()
        return found

    async def close(self) -> None:
        for agent in self.agents:
            await agent.stop()
        for service, nc in self.services:
            with contextlib.suppress(Exception):
                await service.stop()
            with contextlib.suppress(Exception):
                await nc.close()
        await self.nc.close()


def active_replicas(events: list[Placement]) -> dict[str, set[str]]:
    """Apply events as agents do (newest (epoch, generation) per node and replica wins); return replica -> nodes running it."""
    latest: dict[tuple[str, str], Placement] = {}
    for event in events:
        key = (event.node_id, event.replica_id)
        current = latest.get(key)
        if current is None or (event.epoch, event.generation) >= (current.epoch, current.generation):
            latest[key] = event
    running: dict[str, set[str]] = {}
    for (node_id, replica_id), event in latest.items():
        if event.action == "start":
            running.setdefault(replica_id, set()).add(node_id)
    return running


async def eventually(predicate: Callable[[], object], *, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait until `predicate()` is truthy; the caller asserts afterwards so a failure names the condition."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)


@pytest.fixture
async def harness(nats_server_factory: Callable[..., object], tmp_path: Path) -> AsyncIterator[Harness]:
    server = nats_server_factory()
    harness = Harness(server.url)  # type: ignore[attr-defined]
    await harness.open()
    yield harness
    await harness.close()


def old_time(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)

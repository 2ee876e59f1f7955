"""Simulated agents and an in-process scheduler on a real nats-server, for the scheduler benchmarks.

The simulated agents publish telemetry on `ctm.telemetry.<node_id>` and,
with `run_placements`, publish a `running` status for every start event on
`ctm.placement.<node_id>` at once (no artifact fetch, no cold start). A killed agent
stops both, as a crashed process would.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from types import TracebackType

from continuum.services.scheduler.service import SchedulerService
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.rpc import call
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import CpuStats, MemoryStats, Placement, Resources, Telemetry, WorkloadSpec, WorkloadStatus, decode
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest
from continuum.shared.topology import provision

SOURCE = "bench/sim-agent"
# Upper bound for any wait in these benchmarks, in seconds, so a broken run ends by itself.
WAIT_LIMIT_S = 120.0


class SimulatedCluster:
    def __init__(self, url: str, *, interval_s: float) -> None:
        self.settings = Settings(nats=NatsSettings(url=url, reconnect_wait_s=0.2))
        self.interval_s = interval_s
        self.live: set[str] = set()
        self.seq = 0
        self.answered = 0
        # node id -> perf_counter time its last report was acknowledged by JetStream.
        self.reported_at: dict[str, float] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.scheduler: SchedulerService | None = None

    async def __aenter__(self) -> SimulatedCluster:
        self.nc = await bus.connect(self.settings, name="bench-sim-agents")
        self.js = bus.jetstream(self.nc)
        await provision(self.js, self.settings.jetstream)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.scheduler is not None:
            await self.scheduler.stop()
            await self.scheduler.context.nc.close()
        await self.nc.close()

    # Agents --------------------------------------------------------------

    async def add_nodes(self, count: int, *, run_placements: bool) -> None:
        """Start `count` agents that report every interval; with `run_placements`, they also report each start as running."""
        self.live = {f"sim-{index}" for index in range(count)}
        await self._report_all()
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        if run_placements:
            await self.nc.subscribe(subjects.ALL_PLACEMENTS, cb=self._handle_placement)

    def _report(self, node_id: str) -> Telemetry:
        index = int(node_id.removeprefix("sim-"))
        return Telemetry(
            node_id=node_id,
            seq=self.seq,
            boot_id="bench",
            interval_s=self.interval_s,
            zone=f"zone-{index % 4}",
            site=f"site-{index % 8}",
            cpu=CpuStats(cores=4, utilization_pct=10.0),
            memory=MemoryStats(total_bytes=8 << 30, available_bytes=6 << 30),
            runtimes=["function", "wasm"],
            capacity=Resources(cpu_millis=4000, memory_mb=8192),
            allocatable=Resources(cpu_millis=4000, memory_mb=8192),
        )

    async def _report_all(self) -> None:
        self.seq += 1
        reports = [self._report(node_id) for node_id in sorted(self.live)]
        for start in range(0, len(reports), 256):
            batch = reports[start : start + 256]
            await asyncio.gather(*(bus.publish(self.js, subjects.telemetry(report.node_id), report, source=SOURCE) for report in batch))
            now = time.perf_counter()
            for report in batch:
                self.reported_at[report.node_id] = now

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self._report_all()

    async def _handle_placement(self, msg) -> None:  # type: ignore[no-untyped-def]
        if msg.subject == subjects.PLACEMENT_FAILED:
            return
        event = decode(msg.data, Placement)
        if event.action != "start" or event.node_id not in self.live:
            return
        status = WorkloadStatus(
            workload=event.workload,
            replica_id=event.replica_id,
            node_id=event.node_id,
            state="running",
            epoch=event.epoch,
            generation=event.generation,
            cold_start_ms=0.0,
        )
        await bus.publish(self.js, subjects.workload_status(event.workload), status, source=SOURCE)
        self.answered += 1

    # Scheduler -------------------------------------------------------------

    async def start_scheduler(self) -> SchedulerService:
        nc = await bus.connect(self.settings, name="bench-scheduler")
        context = ServiceContext(name="scheduler", settings=self.settings, nc=nc, js=bus.jetstream(nc), instance_id="bench-scheduler")
        self.scheduler = SchedulerService(SchedulerSettings())
        await self.scheduler.start(context)
        scheduler = self.scheduler
        await _wait_until(lambda: scheduler.leading and len(scheduler.registry.nodes) >= len(self.live))
        return scheduler

    async def deploy(self, name: str, replicas: int) -> None:
        """Deploy through the API and wait until every replica runs."""
        await call(self.nc, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name=name, artifact=name, replicas=replicas)), DeployReply)
        await _wait_until(lambda: self._running(name, replicas, avoid=None))

    async def deploy_and_count(self, workloads: int, replicas: int) -> float:
        """Deploy `workloads` specs at once; return the seconds until all their start events were published."""
        expected = workloads * replicas
        seen = 0
        done = asyncio.Event()

        async def count(msg) -> None:  # type: ignore[no-untyped-def]
            nonlocal seen
            if msg.subject != subjects.PLACEMENT_FAILED:
                seen += 1
                if seen >= expected:
                    done.set()

        subscription = await self.nc.subscribe(subjects.ALL_PLACEMENTS, cb=count)
        await self.nc.flush()
        started = time.perf_counter()
        specs = [WorkloadSpec(name=f"bench-{index}", artifact="bench", replicas=replicas) for index in range(workloads)]
        await asyncio.gather(*(call(self.nc, subjects.api("deploy"), DeployRequest(spec=spec), DeployReply) for spec in specs))
        await asyncio.wait_for(done.wait(), WAIT_LIMIT_S)
        elapsed = time.perf_counter() - started
        await subscription.unsubscribe()
        return elapsed

    async def kill_busiest_and_wait(self, name: str) -> tuple[float, float]:
        """Stop the live agent with the most replicas of `name` until they all run elsewhere.

        Return the seconds from the kill and from the agent's last report. The last report
        is the worst case for the moment of death, because the scheduler hears nothing after it.
        """
        assert self.scheduler is not None
        replicas = self.scheduler.cluster.bindings[name].replicas
        per_node = Counter(binding.node_id for binding in replicas.values() if binding.node_id in self.live)
        victim, _ = per_node.most_common(1)[0]
        moved = [replica_id for replica_id, binding in replicas.items() if binding.node_id == victim]

        self.live.discard(victim)
        started = time.perf_counter()
        await _wait_until(lambda: all(self._replica_running_off(name, replica_id, victim) for replica_id in moved))
        finished = time.perf_counter()
        return finished - started, finished - self.reported_at[victim]

    def _running(self, name: str, replicas: int, *, avoid: str | None) -> bool:
        assert self.scheduler is not None
        bound = self.scheduler.cluster.bindings.get(name)
        if bound is None or len(bound.replicas) != replicas:
            return False
        return all(binding.state == "running" and binding.node_id != avoid for binding in bound.replicas.values())

    def _replica_running_off(self, name: str, replica_id: str, node_id: str) -> bool:
        assert self.scheduler is not None
        binding = self.scheduler.cluster.bindings[name].replicas.get(replica_id)
        return binding is not None and binding.node_id != node_id and binding.state == "running"


async def _wait_until(predicate, *, interval_s: float = 0.01) -> None:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + WAIT_LIMIT_S
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"condition not met within {WAIT_LIMIT_S:g} s")
        await asyncio.sleep(interval_s)

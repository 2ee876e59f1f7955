"""Recovery on a single node: failed replicas placed again on the same node, and a restart of agent and scheduler.

The agent applies a placement event only when its (epoch, generation) is
newer than the last one it applied for that replica id, so these tests
replay the placement stream with that same rule (`applied_on_node`).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from scheduler_support import Harness, SimulatedAgent, eventually, old_time, telemetry

from continuum.services.scheduler.registry import NodeRegistry
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared import bus, subjects
from continuum.shared.rpc import call
from continuum.shared.schemas import EmptyRequest, NameRequest, NodeLifecycle, Placement, WorkloadSpec, WorkloadStatus
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest, WorkloadList, WorkloadView

MISSING = "artifact 'ghost' not found in ctm-artifacts; upload it with continuum fn push"


def applied_on_node(events: list[Placement], node_id: str, replica_id: str) -> Placement | None:
    """Return the event an agent ends up applying for one replica: each must be strictly newer than the last."""
    applied: Placement | None = None
    for event in events:
        if event.node_id != node_id or event.replica_id != replica_id:
            continue
        if applied is None or (event.epoch, event.generation) > (applied.epoch, applied.generation):
            applied = event
    return applied


async def deploy(harness: Harness, spec: WorkloadSpec) -> DeployReply:
    return await call(harness.nc, subjects.api("deploy"), DeployRequest(spec=spec), DeployReply)


async def report(harness: Harness, scheduler, replica_id: str, state: str, reason: str = "") -> None:  # type: ignore[no-untyped-def]
    """Report a replica state for its current binding, as the agent does."""
    workload = replica_id.rsplit("-", 1)[0]
    binding = scheduler.cluster.bindings[workload].replicas[replica_id]
    status = WorkloadStatus(
        workload=workload, replica_id=replica_id, node_id=binding.node_id, state=state,  # type: ignore[arg-type]
        epoch=binding.epoch, generation=binding.generation, reason=reason,
    )
    await bus.publish(harness.js, subjects.workload_status(workload), status, source="tests/sim-agent")


async def lifecycle(harness: Harness, node_id: str, event: str, boot_id: str, at: datetime | None = None) -> None:
    message = NodeLifecycle(node_id=node_id, event=event, boot_id=boot_id, at=at or datetime.now(UTC), reason="agent stopping")  # type: ignore[arg-type]
    await bus.publish(harness.js, subjects.node_lifecycle(node_id), message, source="tests/sim-agent")


async def view(harness: Harness, name: str) -> WorkloadView:
    return await call(harness.nc, subjects.api("get"), NameRequest(name=name), WorkloadView)


@pytest.mark.timeout(60)
async def test_failed_replica_restarts_on_same_node(harness: Harness) -> None:
    harness.agent("solo")
    scheduler = await harness.start_scheduler(crash_backoff_initial_s=0.3, crash_backoff_max_s=60.0)
    await eventually(lambda: scheduler.leading and "solo" in scheduler.registry.nodes)
    await deploy(harness, WorkloadSpec(name="ghost", artifact="ghost", replicas=1))
    await eventually(lambda: "ghost" in scheduler.cluster.bindings and scheduler.cluster.bindings["ghost"].replicas)
    first = scheduler.cluster.bindings["ghost"].replicas["ghost-0"].generation

    await report(harness, scheduler, "ghost-0", "failed", MISSING)
    await eventually(lambda: scheduler.cluster.bindings["ghost"].replicas["ghost-0"].generation > first, timeout=10)
    described = await view(harness, "ghost")
    events = await harness.placements()

    applied = applied_on_node(events, "solo", "ghost-0")
    assert applied is not None
    assert (applied.action, applied.generation) == ("start", scheduler.cluster.bindings["ghost"].replicas["ghost-0"].generation)
    assert [e.action for e in events if e.replica_id == "ghost-0"] == ["start", "stop", "start"]
    replica = described.replicas[0]
    assert (replica.node_id, replica.failures, replica.error) == ("solo", 1, MISSING)
    assert replica.reason == f"replica failed: {MISSING}"
    listed = await call(harness.nc, subjects.api("workloads"), EmptyRequest(), WorkloadList)
    summary = next(item for item in listed.workloads if item.name == "ghost")
    assert summary.failed_replicas == 1
    assert summary.last_error == MISSING

    # The retry fails too; a redeploy (after `continuum fn push`) places it again at once, then it runs.
    second = scheduler.cluster.bindings["ghost"].replicas["ghost-0"].generation
    await report(harness, scheduler, "ghost-0", "failed", MISSING)
    await eventually(lambda: scheduler.cluster.bindings["ghost"].replicas["ghost-0"].state == "failed")
    # The second failure backs off for 0.6 s; the redeploy does not wait for it and starts the count over.
    await deploy(harness, WorkloadSpec(name="ghost", artifact="ghost", replicas=1, env={"PUSHED": "1"}))
    await eventually(lambda: scheduler.cluster.bindings["ghost"].replicas["ghost-0"].generation > second, timeout=10)
    retried_failures = scheduler.cluster.bindings["ghost"].replicas["ghost-0"].failures
    await report(harness, scheduler, "ghost-0", "running")
    await eventually(lambda: scheduler.cluster.bindings["ghost"].replicas["ghost-0"].state == "running")
    running = (await view(harness, "ghost")).replicas[0]
    applied = applied_on_node(await harness.placements(), "solo", "ghost-0")

    assert retried_failures == 0
    assert applied is not None and applied.action == "start"
    assert (running.state, running.error) == ("running", "")


def test_lifecycle_from_older_boot_changes_nothing() -> None:
    registry = NodeRegistry(SchedulerSettings())
    registry.apply_telemetry(telemetry("n1", boot_id="boot-a", seq=7, sent_at=old_time(5)))
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="drain", boot_id="boot-a", at=old_time(4)))
    assert registry.nodes["n1"].draining

    registry.apply_telemetry(telemetry("n1", boot_id="boot-b", seq=1, sent_at=old_time(1)))
    after_restart = registry.nodes["n1"].draining
    # Replays of the old boot's drain and bye, with their own time or a later one, are ignored.
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="drain", boot_id="boot-a", at=old_time(4)))
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="bye", boot_id="boot-a", at=old_time(4)))
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="drain", boot_id="boot-a"))
    # A drain of the current boot sent before its newest report is old too.
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="drain", boot_id="boot-b", at=old_time(2)))

    assert after_restart is False
    assert (registry.nodes["n1"].draining, registry.nodes["n1"].status) == (False, "ready")


def test_new_boot_clears_agent_drain_only() -> None:
    from continuum.services.scheduler.model import NodeAdmin

    registry = NodeRegistry(SchedulerSettings())
    registry.apply_telemetry(telemetry("n1", boot_id="boot-a", seq=3, sent_at=old_time(5)))
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="drain", boot_id="boot-a", at=old_time(4)))
    registry.apply_lifecycle(NodeLifecycle(node_id="n1", event="hello", boot_id="boot-b", at=old_time(1)))
    cleared = registry.nodes["n1"].draining
    registry.apply_admin("n1", NodeAdmin(cordoned=True, draining=True, reason="maintenance"))
    registry.apply_telemetry(telemetry("n1", boot_id="boot-c", seq=1))

    assert cleared is False
    assert registry.nodes["n1"].draining is True


@pytest.mark.timeout(60)
@pytest.mark.parametrize("last_event", ["drain", "bye"])
async def test_restart_of_agent_and_scheduler_leaves_node_schedulable(harness: Harness, last_event: str) -> None:
    old_boot = SimulatedAgent(harness.js, "solo", 0.2)
    await lifecycle(harness, "solo", "hello", old_boot.boot_id)
    old_boot.start()
    first = await harness.start_scheduler()
    await eventually(lambda: first.leading and "solo" in first.registry.nodes)
    await deploy(harness, WorkloadSpec(name="svc", artifact="a", replicas=1))
    await eventually(lambda: "svc" in first.cluster.bindings and first.cluster.bindings["svc"].replicas)

    # The agent stops as `continuum up` stops it: a last draining report, drain, then (maybe) bye.
    await old_boot.stop()
    final = telemetry("solo", seq=old_boot.seq + 1, boot_id=old_boot.boot_id, interval_s=0.2)
    final.draining = True
    await bus.publish(harness.js, subjects.telemetry("solo"), final, source="tests/sim-agent")
    drain_at = datetime.now(UTC)
    await lifecycle(harness, "solo", "drain", old_boot.boot_id, drain_at)
    if last_event == "bye":
        await lifecycle(harness, "solo", "bye", old_boot.boot_id)
    await eventually(lambda: first.registry.nodes["solo"].draining)
    await first.stop()
    await harness.kill(first)

    # The scheduler starts first and replays the old boot's last lifecycle event; then the agent starts.
    second = await harness.start_scheduler()
    await eventually(lambda: second.leading and "solo" in second.registry.nodes and second.registry.nodes["solo"].draining)
    new_boot = SimulatedAgent(harness.js, "solo", 0.2)
    harness.agents.append(new_boot)
    await lifecycle(harness, "solo", "hello", new_boot.boot_id)
    new_boot.start()
    node = second.registry.nodes["solo"]
    await eventually(lambda: node.boot_id == new_boot.boot_id and node.schedulable)
    # The old boot's drain delivered again changes nothing.
    await lifecycle(harness, "solo", "drain", old_boot.boot_id, drain_at)
    await deploy(harness, WorkloadSpec(name="after", artifact="a", replicas=1))
    await eventually(lambda: "after" in second.cluster.bindings and second.cluster.bindings["after"].replicas, timeout=5)
    await asyncio.sleep(0.3)

    assert (node.status, node.draining) == ("ready", False)
    assert {b.node_id for b in second.cluster.bindings["after"].replicas.values()} == {"solo"}
    assert {b.node_id for b in second.cluster.bindings["svc"].replicas.values()} == {"solo"}
    assert "after" not in second.reconciler.retry

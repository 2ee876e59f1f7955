"""The scheduler against a real nats-server with simulated agents publishing telemetry."""

from __future__ import annotations

import asyncio

import pytest
from scheduler_support import Harness, active_replicas, eventually, old_time, telemetry

from continuum.shared import bus, subjects
from continuum.shared.rpc import ApiCallError, call
from continuum.shared.schemas import LatencyConstraint, NameRequest, ResourceRequest, WorkloadSpec
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest, WorkloadView


async def deploy(harness: Harness, spec: WorkloadSpec) -> DeployReply:
    return await call(harness.nc, subjects.api("deploy"), DeployRequest(spec=spec), DeployReply)


async def deploy_retrying(harness: Harness, spec: WorkloadSpec, attempts: int = 4) -> DeployReply:
    """Deploy as a client does during a failover: a request that reached the killed leader times out, so retry."""
    for attempt in range(1, attempts + 1):
        try:
            return await deploy(harness, spec)
        except ApiCallError as exc:
            if exc.error.code not in ("timeout", "unavailable") or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def bound_nodes(scheduler, workload: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    bound = scheduler.cluster.bindings.get(workload)
    return {rid: b.node_id for rid, b in bound.replicas.items()} if bound else {}


@pytest.mark.timeout(60)
async def test_deploy_burst_never_overcommits(harness: Harness) -> None:
    for index in range(4):
        harness.agent(f"n{index}", cpu_millis=1000, memory_mb=1024)
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading and len(scheduler.registry.nodes) == 4)
    specs = [WorkloadSpec(name=f"w{i}", artifact="a", replicas=2, resources=ResourceRequest(cpu_millis=100, memory_mb=300)) for i in range(10)]
    await asyncio.gather(*(deploy(harness, spec) for spec in specs))
    await eventually(lambda: sum(len(bound_nodes(scheduler, s.name)) for s in specs) >= 12 and not scheduler._dirty, timeout=10)
    await asyncio.sleep(0.3)

    per_node: dict[str, int] = {}
    for spec in specs:
        for node in bound_nodes(scheduler, spec.name).values():
            per_node[node] = per_node.get(node, 0) + 300
    assert sum(len(bound_nodes(scheduler, s.name)) for s in specs) == 12
    assert all(memory <= 1024 for memory in per_node.values()), per_node
    failed = scheduler.reconciler.retry
    assert any("insufficient memory" in state.message for state in failed.values())


@pytest.mark.timeout(60)
async def test_lost_node_replicas_replaced_late_node_kept(harness: Harness) -> None:
    victim = harness.agent("victim")
    harness.agent("spare")
    late = harness.agent("late")
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading and len(scheduler.registry.nodes) == 3)
    await deploy(harness, WorkloadSpec(name="svc", artifact="a", replicas=3))
    await eventually(lambda: len(bound_nodes(scheduler, "svc")) == 3)
    before = bound_nodes(scheduler, "svc")
    assert sorted(before.values()) == ["late", "spare", "victim"]

    # One interval late: a 0.4 s gap with a 0.2 s interval stays below the 3-interval lost threshold.
    await late.stop()
    await asyncio.sleep(0.4)
    late.start()
    await victim.stop()
    await eventually(lambda: scheduler.registry.nodes["victim"].status == "lost", timeout=5)
    await eventually(lambda: "victim" not in bound_nodes(scheduler, "svc").values(), timeout=5)

    after = bound_nodes(scheduler, "svc")
    assert scheduler.registry.nodes["late"].status == "ready"
    assert after["svc-0"] == before["svc-0"] or before["svc-0"] == "victim"
    assert [rid for rid, node in before.items() if node == "late"] == [rid for rid, node in after.items() if node == "late"]
    running = active_replicas(await harness.placements())
    assert all(len(nodes) == 1 and "victim" not in nodes for nodes in running.values()), running


@pytest.mark.timeout(60)
async def test_stale_replay_after_restart_evicts_nothing(harness: Harness) -> None:
    agents = [harness.agent(f"n{i}") for i in range(3)]
    first = await harness.start_scheduler()
    await eventually(lambda: first.leading and len(first.registry.nodes) == 3)
    await deploy(harness, WorkloadSpec(name="svc", artifact="a", replicas=3))
    await eventually(lambda: len(bound_nodes(first, "svc")) == 3)
    before = bound_nodes(first, "svc")
    await first.stop()
    harness.services.clear()

    # A burst of old reports for every node (lower seq, same boot) arrives while the scheduler is down.
    for agent in agents:
        for seq in range(1, 6):
            report = telemetry(agent.node_id, seq=seq, boot_id=agent.boot_id, interval_s=0.2, sent_at=old_time(60))
            await bus.publish(harness.js, subjects.telemetry(agent.node_id), report, source="tests/replay")
    second = await harness.start_scheduler()
    await eventually(lambda: second.leading)
    # And the same burst again once the new scheduler has applied newer reports.
    await asyncio.sleep(0.5)
    for agent in agents:
        for seq in range(1, 6):
            report = telemetry(agent.node_id, seq=seq, boot_id=agent.boot_id, interval_s=0.2, sent_at=old_time(60))
            await bus.publish(harness.js, subjects.telemetry(agent.node_id), report, source="tests/replay")
    await asyncio.sleep(1.5)

    assert bound_nodes(second, "svc") == before
    assert all(node.status == "ready" for node in second.registry.nodes.values())
    assert second.registry.dropped_stale > 0


@pytest.mark.timeout(60)
async def test_rtt_violation_moves_replica_once(harness: Harness) -> None:
    a = harness.agent("a", zone="zone-b", rtt={"zone-a": 5.0})
    b = harness.agent("b", zone="zone-c", rtt={"zone-a": 10.0}, cpu_millis=1000)
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading and len(scheduler.registry.nodes) == 2)
    await deploy(harness, WorkloadSpec(name="edge", artifact="a", replicas=1, preference="latency", latency=LatencyConstraint(target="zone-a", max_rtt_ms=20)))
    await eventually(lambda: bound_nodes(scheduler, "edge") == {"edge-0": "a"})

    a.overrides["rtt"] = {"zone-a": 60.0}
    await eventually(lambda: bound_nodes(scheduler, "edge") == {"edge-0": "b"}, timeout=5)
    # Now b hovers around the limit and a recovers: no further move.
    a.overrides["rtt"] = {"zone-a": 1.0}
    for value in (19.0, 22.0, 18.0, 23.0, 19.5, 21.0):
        b.overrides["rtt"] = {"zone-a": value}
        await asyncio.sleep(0.25)

    starts = [e for e in await harness.placements() if e.action == "start" and e.replica_id == "edge-0"]
    assert [e.node_id for e in starts] == ["a", "b"]
    assert bound_nodes(scheduler, "edge") == {"edge-0": "b"}


@pytest.mark.timeout(90)
async def test_leader_killed_mid_burst_no_duplicates(harness: Harness) -> None:
    for index in range(6):
        harness.agent(f"n{index}", cpu_millis=64000, memory_mb=65536)
    first = await harness.start_scheduler()
    await eventually(lambda: first.leading)
    second = await harness.start_scheduler()
    await eventually(lambda: len(second.registry.nodes) == 6 and len(first.registry.nodes) == 6)
    assert not second.leading

    specs = [WorkloadSpec(name=f"w{i}", artifact="a", replicas=3) for i in range(30)]
    await asyncio.gather(*(deploy(harness, spec) for spec in specs[:15]))
    await harness.kill(first)
    await asyncio.gather(*(deploy_retrying(harness, spec) for spec in specs[15:]))
    await eventually(lambda: second.leading, timeout=10)
    await eventually(lambda: all(len(bound_nodes(second, s.name)) == 3 for s in specs), timeout=15)
    await asyncio.sleep(0.5)

    assert second.reconciler.epoch > first.reconciler.epoch
    running = active_replicas(await harness.placements())
    expected = sorted(f"{spec.name}-{index}" for spec in specs for index in range(3))
    assert sorted(running) == expected
    assert [rid for rid, nodes in running.items() if len(nodes) != 1] == []


@pytest.mark.timeout(60)
async def test_invalid_spec_and_unknown_names_rejected(harness: Harness) -> None:
    harness.agent("n0")
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading)
    bad = WorkloadSpec(name="bad", artifact="", replicas=-1, resources=ResourceRequest(memory_mb=-5))
    with pytest.raises(ApiCallError) as invalid:
        await deploy(harness, bad)
    assert invalid.value.error.code == "invalid_spec"
    assert invalid.value.error.details == [
        "artifact: empty; name an object in ctm-artifacts or an s3:// URI",
        "replicas: -1 is outside 0..10000",
        "resources.memory_mb: -5 is below 0",
    ]
    with pytest.raises(ApiCallError) as missing:
        await call(harness.nc, subjects.api("get"), NameRequest(name="nope"), WorkloadView)
    assert missing.value.error.code == "not_found"
    assert "'nope'" in missing.value.error.message
    response = await harness.nc.request(subjects.api("deploy"), b"{not json", timeout=2)
    assert response.headers["Nats-Service-Error-Code"] == "400"
    with pytest.raises(ApiCallError) as node_missing:
        await call(harness.nc, subjects.api("drain"), NameRequest(name="ghost"), WorkloadView)
    assert node_missing.value.error.code == "not_found"

    reply = await deploy(harness, WorkloadSpec(name="ok", artifact="a"))
    assert reply.created

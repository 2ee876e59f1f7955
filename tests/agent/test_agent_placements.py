"""Placements: start, stop, replay, stale generations and bad placements."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from continuum.shared import subjects
from continuum.shared.schemas.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(60)


async def test_start_placement_makes_function_invocable(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    await start_agent(node)

    spec = WorkloadSpec(name=name, artifact=name, entrypoint="main:handler")
    await place(node, spec, f"{name}-r1")
    running = await status.wait_for(f"{name}-r1", "running")
    reply = await call(name, {"hello": "world"})

    assert reply["ok"] is True
    assert reply["result"]["echo"] == {"hello": "world"}
    assert reply["replica_id"] == f"{name}-r1"
    assert running.cold_start_ms is not None and running.cold_start_ms > 0
    assert status.states(f"{name}-r1") == ["pending", "pulling", "starting", "running"]


async def test_stop_placement_removes_function(unique, nc, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    agent = await start_agent(node)
    spec = WorkloadSpec(name=name, artifact=name)
    await place(node, spec, f"{name}-r1", generation=1)
    await status.wait_for(f"{name}-r1", "running")
    pid = (await call(name, {}))["result"]["pid"]

    await place(node, spec, f"{name}-r1", action="stop", generation=2)
    await status.wait_for(f"{name}-r1", "stopped")

    with pytest.raises(Exception) as raised:
        await nc.request(subjects.function(name), b"{}", timeout=1.0)
    assert type(raised.value).__name__ in {"NoRespondersError", "TimeoutError"}
    assert f"{name}-r1" not in agent.replicas
    assert not _process_alive(pid)


async def test_replayed_placement_starts_one_replica(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    agent = await start_agent(node)
    spec = WorkloadSpec(name=name, artifact=name)

    await place(node, spec, f"{name}-r1", generation=5)
    await place(node, spec, f"{name}-r1", generation=5)
    await status.wait_for(f"{name}-r1", "running")
    await asyncio.sleep(0.5)

    assert status.states(f"{name}-r1").count("running") == 1
    assert len(agent.replicas) == 1
    assert agent.replicas[f"{name}-r1"].runtime is not None
    assert len(agent.replicas[f"{name}-r1"].runtime.pids) == 1  # type: ignore[union-attr]


async def test_older_generation_is_ignored(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    agent = await start_agent(node)
    spec = WorkloadSpec(name=name, artifact=name)

    await place(node, spec, f"{name}-r1", epoch=2, generation=10)
    await status.wait_for(f"{name}-r1", "running")
    await place(node, spec, f"{name}-r1", action="stop", epoch=2, generation=9)
    await place(node, spec, f"{name}-r1", action="stop", epoch=1, generation=50)
    await asyncio.sleep(0.5)

    assert agent.replicas[f"{name}-r1"].state == "running"
    assert "stopped" not in status.states(f"{name}-r1")
    assert (await call(name, {"still": "here"}))["ok"] is True


async def test_restart_converges_without_duplicates(unique, nc, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    spec = WorkloadSpec(name=name, artifact=name)
    first = await start_agent(node)
    await place(node, spec, f"{name}-r1", generation=1)
    await place(node, spec, f"{name}-r2", generation=2)
    await status.wait_for(f"{name}-r1", "running")
    await status.wait_for(f"{name}-r2", "running")
    await first.stop()

    # While the agent is offline the scheduler stops r1 and places r3.
    await place(node, spec, f"{name}-r1", action="stop", generation=3)
    await place(node, spec, f"{name}-r3", generation=4)
    second = await start_agent(node)
    await status.wait_for(f"{name}-r2", "running", count=2)
    await status.wait_for(f"{name}-r3", "running")
    await asyncio.sleep(0.5)

    assert sorted(second.replicas) == [f"{name}-r2", f"{name}-r3"]
    assert all(replica.state == "running" for replica in second.replicas.values())
    assert status.states(f"{name}-r3").count("running") == 1
    assert (await call(name, {}))["ok"] is True


async def test_missing_artifact_fails_replica_with_reason(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name, other = f"node-{unique}", f"fn-{unique}", f"ok-{unique}"
    await push_artifact(other, function_source)
    status = await watch_status(name)
    other_status = await watch_status(other)
    await start_agent(node)
    await place(node, WorkloadSpec(name=other, artifact=other), f"{other}-r1")
    await other_status.wait_for(f"{other}-r1", "running")

    await place(node, WorkloadSpec(name=name, artifact=f"missing-{unique}"), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert f"missing-{unique}" in failed.reason
    assert "not found" in failed.reason
    assert (await call(other, {"x": 1}))["ok"] is True


async def test_unknown_runtime_fails_replica_with_reason(unique, start_agent, place, push_artifact, watch_status, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    status = await watch_status(name)
    await start_agent(node)

    await place(node, WorkloadSpec(name=name, artifact=name, runtime="container"), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert "runtime 'container' is not available" in failed.reason


async def test_invalid_placement_fails_and_goes_to_dlq(unique, nc, js, start_agent, push_artifact, watch_status, call, function_source):
    node, name, other = f"node-{unique}", f"fn-{unique}", f"ok-{unique}"
    await push_artifact(other, function_source)
    status = await watch_status(name)
    other_status = await watch_status(other)
    dead_letters = []

    async def _collect(msg) -> None:
        dead_letters.append(msg)

    dlq = await nc.subscribe(subjects.dlq("PLACEMENTS"), cb=_collect)
    agent = await start_agent(node)

    bad = b'{"action": "start", "node_id": "%s", "workload": "%s", "replica_id": "%s-r1", "epoch": "one", "generation": 1}' % (
        node.encode(),
        name.encode(),
        name.encode(),
    )
    await js.publish(subjects.placement(node), bad)
    await js.publish(subjects.placement(node), b"not json at all")
    failed = await status.wait_for(f"{name}-r1", "failed")
    await asyncio.wait_for(_until(lambda: len(dead_letters) >= 2), 10.0)

    await js.publish(
        subjects.placement(node),
        b'{"action": "start", "node_id": "%s", "workload": "%s", "replica_id": "%s-r1", "epoch": 1, "generation": 1, "spec": {"name": "%s", "artifact": "%s"}}'
        % (node.encode(), other.encode(), other.encode(), other.encode(), other.encode()),
    )
    await other_status.wait_for(f"{other}-r1", "running")
    await dlq.unsubscribe()

    assert "$.epoch" in failed.reason
    assert agent.consumer.dead_lettered == 2
    assert (await call(other, {}))["ok"] is True


async def _until(predicate) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


def _process_alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_large_object_store_artifact_is_cached_intact(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    node, name = f"node-{unique}", f"big-{unique}"
    # A 4 MiB comment block spans many object store chunks, which are written to disk one at a time.
    padded = function_source + b"\n" + (b"# " + b"y" * 1022 + b"\n") * 4096
    digest = "sha256:" + hashlib.sha256(padded).hexdigest()
    await push_artifact(name, padded)
    status = await watch_status(name)
    agent = await start_agent(node)

    await place(node, WorkloadSpec(name=name, artifact=name, artifact_digest=digest), f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")
    reply = await call(name, {"big": True})

    assert reply["ok"] is True
    assert (agent.artifacts.root / digest.removeprefix("sha256:") / "blob").read_bytes() == padded
    assert list((agent.artifacts.root / "incoming").iterdir()) == []

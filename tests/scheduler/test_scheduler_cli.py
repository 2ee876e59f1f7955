"""`continuum explain` and `continuum describe workload` run as a user would, against an in-process scheduler."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scheduler_support import Harness, eventually

from continuum.shared import bus, subjects
from continuum.shared.rpc import call
from continuum.shared.schemas import ResourceRequest, WorkloadSpec, WorkloadStatus
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest
from continuum.shared.testing import run_cli


async def continuum(url: str, *args: str) -> tuple[int, str, str]:
    return await run_cli(url, *args, timeout=30)


@pytest.mark.timeout(90)
async def test_explain_lists_fits_and_reasons(harness: Harness, tmp_path: Path) -> None:
    harness.agent("small", cpu_millis=1000, memory_mb=512)
    harness.agent("large", cpu_millis=8000, memory_mb=16384)
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading and len(scheduler.registry.nodes) == 2)
    spec = WorkloadSpec(name="big", artifact="a", replicas=1, resources=ResourceRequest(cpu_millis=500, memory_mb=4096))
    await call(harness.nc, subjects.api("deploy"), DeployRequest(spec=spec), DeployReply)

    code, out, err = await continuum(harness.url, "explain", "big", "-o", "json")
    assert code == 0, err
    reply = json.loads(out)
    assert (reply["workload"], reply["total_nodes"], reply["feasible_nodes"]) == ("big", 2, 1)
    assert reply["reasons"] == {"insufficient memory": 1}
    assert [candidate["node_id"] for candidate in reply["candidates"]] == ["large"]

    code, out, err = await continuum(harness.url, "explain", "big")
    assert code == 0, err
    assert "1/2 nodes fit" in out
    assert "not fit: insufficient memory" in out
    assert "large" in out

    undeployed = tmp_path / "gpu.yaml"
    undeployed.write_text("name: gpu\nartifact: a\nresources:\n  gpus: 1\n")
    code, out, err = await continuum(harness.url, "explain", "-f", str(undeployed), "-o", "json")
    assert code == 0, err
    assert json.loads(out)["feasible_nodes"] == 0

    code, out, err = await continuum(harness.url, "explain", "nope")
    assert code == 1
    assert "not_found" in err
    assert "'nope'" in err

    code, out, err = await continuum(harness.url, "explain")
    assert code == 1
    assert "give a workload NAME or --file SPEC" in err


@pytest.mark.timeout(90)
async def test_describe_workload_shows_agent_error(harness: Harness) -> None:
    harness.agent("solo")
    scheduler = await harness.start_scheduler(crash_backoff_initial_s=60.0)
    await eventually(lambda: scheduler.leading and "solo" in scheduler.registry.nodes)
    await call(harness.nc, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name="ghost", artifact="ghost")), DeployReply)
    await eventually(lambda: "ghost" in scheduler.cluster.bindings and scheduler.cluster.bindings["ghost"].replicas)
    binding = scheduler.cluster.bindings["ghost"].replicas["ghost-0"]
    reason = "artifact 'ghost' not found in object store 'ctm-artifacts'"
    status = WorkloadStatus(
        workload="ghost", replica_id="ghost-0", node_id="solo", state="failed", epoch=binding.epoch, generation=binding.generation, reason=reason
    )
    await bus.publish(harness.js, subjects.workload_status("ghost"), status, source="tests/sim-agent")
    await eventually(lambda: binding.state == "failed" and binding.failures == 1)

    code, out, err = await continuum(harness.url, "describe", "workload", "ghost")
    assert code == 0, err
    assert "last error" in out
    assert reason in out
    code, out, err = await continuum(harness.url, "describe", "workload", "ghost", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["replicas"][0]["error"] == reason

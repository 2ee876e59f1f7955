from __future__ import annotations

from scheduler_support import Harness, active_replicas, eventually

from continuum.shared import subjects
from continuum.shared.rpc import call
from continuum.shared.schemas import WorkloadSpec
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest


async def test_deploy_places_replicas(harness: Harness) -> None:
    for index in range(3):
        harness.agent(f"node-{index}")
    scheduler = await harness.start_scheduler()
    await eventually(lambda: scheduler.leading and len(scheduler.registry.nodes) == 3)
    reply = await call(harness.nc, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name="web", artifact="web.py", replicas=3)), DeployReply)
    assert reply.created
    await eventually(lambda: len(scheduler.cluster.bindings.get("web").replicas) == 3 if "web" in scheduler.cluster.bindings else False)
    running = active_replicas(await harness.placements())
    assert sorted(running) == ["web-0", "web-1", "web-2"]

"""An agent behind the edge leaf node, scheduled by a scheduler on the hub, each with its own credentials.

The agent connects to the leaf node as `agent-edge-1` and reaches the hub's
streams through the JetStream domain `hub`. The scheduler connects to a hub
node as `scheduler`. The admin pushes the function's code to the
`ctm-artifacts` object store, deploys it and invokes it from the hub.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_support import ServiceProcess, eventually, violations

from continuum.shared import subjects
from continuum.shared.rpc import ApiCallError, call
from continuum.shared.schemas import EmptyRequest, NameRequest, WorkloadSpec
from continuum.shared.schemas.scheduler_api import DeployReply, DeployRequest, NodeList, WorkloadView

FUNCTION_SOURCE = b"""
def handler(event):
    return {"echo": event, "site": "site-a"}
"""

SCHEDULER_ENV = {
    "CONTINUUM_SCHEDULER_RECONCILE_INTERVAL_S": "0.1",
    "CONTINUUM_SCHEDULER_LEASE_TTL_S": "1.0",
}


@pytest.mark.timeout(150)
async def test_leaf_agent_runs_function_deployed_on_hub(provisioned, tmp_path: Path):
    hub, leaf = provisioned.hub[0], provisioned.leaf
    before = {"agent": len(violations(leaf, "agent-edge-1")), "scheduler": len(violations(hub, "scheduler"))}
    agent = ServiceProcess(
        "agent", "agent-edge-1", provisioned.passwords["agent-edge-1"], f"nats://127.0.0.1:{leaf.port}", tmp_path,
        {"CONTINUUM_JETSTREAM_DOMAIN": provisioned.inventory.hub_domain},
    )
    scheduler = ServiceProcess(
        "scheduler", "scheduler", provisioned.passwords["scheduler"], f"nats://127.0.0.1:{hub.port}", tmp_path, SCHEDULER_ENV
    )
    admin = await provisioned.connect("admin")
    try:
        await scheduler.start()
        await agent.start("--node-id", "edge-1", "--state-dir", str(tmp_path / "edge-1"), "--telemetry-interval", "0.5")
        await scheduler.wait_running()
        await agent.wait_running()

        async def _edge_ready() -> bool:
            try:
                listing = await call(admin, subjects.api("nodes"), EmptyRequest(), NodeList, timeout=2.0)
            except ApiCallError:
                return False
            return any(node.node_id == "edge-1" and node.status == "ready" for node in listing.nodes)

        ready = await eventually(_edge_ready, timeout=40.0, interval=0.2)

        store = await admin.jetstream().object_store("ctm-artifacts")
        await store.put("edge-echo", FUNCTION_SOURCE)
        deployed = await call(
            admin, subjects.api("deploy"), DeployRequest(spec=WorkloadSpec(name="edge-echo", artifact="edge-echo", replicas=1)), DeployReply
        )

        async def _replicas() -> dict[str, tuple[str, str]] | None:
            try:
                view = await call(admin, subjects.api("get"), NameRequest(name="edge-echo"), WorkloadView, timeout=2.0)
            except ApiCallError:
                return None
            replicas = {replica.replica_id: (replica.node_id, replica.state) for replica in view.replicas}
            return replicas if replicas and all(state == "running" for _, state in replicas.values()) else None

        replicas = await eventually(_replicas, timeout=40.0, interval=0.2)
        answer = json.loads((await admin.request(subjects.function("edge-echo"), b'{"n": 1}', timeout=10.0)).data)
    finally:
        await admin.close()
        agent_code = await agent.stop()
        scheduler_code = await scheduler.stop()

    assert ready, agent.output()[-2000:]
    assert deployed.created
    assert replicas == {"edge-echo-0": ("edge-1", "running")}, agent.output()[-2000:]
    assert answer["ok"] is True
    assert answer["result"] == {"echo": {"n": 1}, "site": "site-a"}
    assert agent_code == 0
    assert scheduler_code == 0
    assert violations(leaf, "agent-edge-1")[before["agent"]:] == []
    assert violations(hub, "scheduler")[before["scheduler"]:] == []

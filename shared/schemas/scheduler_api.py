"""Requests and replies of the scheduler's management API (`ctm.api.*`).

Requests are Events (unknown fields ignored) except the workload spec they
carry, which is a Document and rejects unknown fields.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from continuum.shared.schemas._base import Event
from continuum.shared.schemas.common import Resources, Taint
from continuum.shared.schemas.workload import WorkloadSpec

NodeStatus = Literal["ready", "suspect", "lost", "gone"]


class DeployRequest(Event, kw_only=True):
    CE_TYPE = "continuum.api.deploy.v1"

    spec: WorkloadSpec


class DeployReply(Event, kw_only=True):
    """`created` is false when an existing workload was updated."""

    CE_TYPE = "continuum.api.deploy.reply.v1"

    name: str
    created: bool
    desired_replicas: int


class ScaleWorkloadRequest(Event, kw_only=True):
    """Set a fixed replica count; `replicas` 0 stops every replica but keeps the spec."""

    CE_TYPE = "continuum.api.scale.v1"

    name: str
    replicas: int


class NodeActionRequest(Event, kw_only=True):
    """Cordon, uncordon or drain one node; `reason` is kept for `describe node`."""

    CE_TYPE = "continuum.api.node.action.v1"

    name: str
    reason: str = ""


class ExplainRequest(Event, kw_only=True):
    """Explain the placement of a deployed workload (`name`) or of a spec not yet deployed."""

    CE_TYPE = "continuum.api.explain.v1"

    name: str | None = None
    spec: WorkloadSpec | None = None


class ReplicaView(msgspec.Struct, kw_only=True):
    """One replica as the scheduler sees it; `previous_node` is set while a move hands over.

    `error` is the agent's reason for the last `failed` report, kept while
    the replica is re-placed and cleared once it runs.
    """

    replica_id: str
    node_id: str
    state: str
    epoch: int
    generation: int
    previous_node: str | None = None
    failures: int = 0
    reason: str = ""
    error: str = ""


class WorkloadView(Event, kw_only=True):
    CE_TYPE = "continuum.api.workload.v1"

    name: str
    spec: WorkloadSpec
    desired_replicas: int
    replicas: list[ReplicaView] = msgspec.field(default_factory=list)
    unschedulable: str = ""


class WorkloadSummary(msgspec.Struct, kw_only=True):
    name: str
    runtime: str
    desired_replicas: int
    bound_replicas: int
    running_replicas: int
    unschedulable: str = ""
    # Replicas whose last report was a failure, and the agent's reason for one of them.
    failed_replicas: int = 0
    last_error: str = ""


class WorkloadList(Event, kw_only=True):
    CE_TYPE = "continuum.api.workloads.v1"

    workloads: list[WorkloadSummary] = msgspec.field(default_factory=list)


class NodeView(Event, kw_only=True):
    """A node in the registry; `reserved` sums the requests of replicas bound to it."""

    CE_TYPE = "continuum.api.node.v1"

    node_id: str
    status: NodeStatus
    cordoned: bool = False
    draining: bool = False
    cordon_reason: str = ""
    zone: str = ""
    site: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: list[Taint] = msgspec.field(default_factory=list)
    runtimes: list[str] = msgspec.field(default_factory=list)
    gpu_models: list[str] = msgspec.field(default_factory=list)
    allocatable: Resources = msgspec.field(default_factory=Resources)
    reserved: Resources = msgspec.field(default_factory=Resources)
    rtt_ms: dict[str, float] = msgspec.field(default_factory=dict)
    replicas: list[str] = msgspec.field(default_factory=list)
    seconds_since_report: float | None = None
    boot_id: str = ""
    seq: int = 0


class NodeList(Event, kw_only=True):
    CE_TYPE = "continuum.api.nodes.v1"

    nodes: list[NodeView] = msgspec.field(default_factory=list)


class CandidateScore(msgspec.Struct, kw_only=True):
    """A feasible node with its weighted total and each score plugin's normalised value (0-100)."""

    node_id: str
    total: float
    scores: dict[str, float] = msgspec.field(default_factory=dict)


class ExplainReply(Event, kw_only=True):
    CE_TYPE = "continuum.api.explain.reply.v1"

    workload: str
    total_nodes: int
    feasible_nodes: int
    message: str
    reasons: dict[str, int] = msgspec.field(default_factory=dict)
    candidates: list[CandidateScore] = msgspec.field(default_factory=list)


class AutoscaleReply(Event, kw_only=True):
    CE_TYPE = "continuum.api.autoscale.reply.v1"

    workload: str
    desired_replicas: int
    changed: bool

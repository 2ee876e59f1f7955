"""Workload specs (written by people) and the placement events derived from them."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from continuum.shared.schemas._base import Document, Event, utcnow
from continuum.shared.schemas.common import Toleration

Runtime = Literal["function", "wasm", "container"]
Preference = Literal["latency", "cost", "balanced"]


class ResourceRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Resources one replica requests: CPU in millicores, memory in MiB, GPUs and an optional GPU model."""

    cpu_millis: int = 100
    memory_mb: int = 128
    gpus: int = 0
    gpu_model: str | None = None


class ZoneSpread(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Spread replicas across values of a topology key (`zone` or `site`) with at most `max_skew` difference."""

    topology_key: Literal["zone", "site"] = "zone"
    max_skew: int = 1


class AffinityTerm(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Co-locate with (affinity) or keep away from (anti-affinity) replicas of `workload`.

    `topology_key` is `node`, `zone` or `site`: the domain in which the other
    replicas count. `required` turns a preference into a filter.
    """

    workload: str
    topology_key: Literal["node", "zone", "site"] = "node"
    required: bool = True


class LatencyConstraint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Maximum measured RTT, in milliseconds, from the node to a named zone or site."""

    target: str
    kind: Literal["zone", "site"] = "zone"
    max_rtt_ms: float


class DataLocality(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Preference for nodes in the site that stores a vector collection or an object store bucket."""

    collection: str | None = None
    bucket: str | None = None


class WorkloadSpec(Document, kw_only=True):
    """A workload as users deploy it (YAML or JSON).

    Either `replicas` is set (a fixed count) or `min_replicas`/`max_replicas`
    are (autoscaled; `min_replicas: 0` enables scale to zero). `artifact` names
    an object in the artifacts object store, or an `s3://` URI. `entrypoint`
    is `module:function` for Python functions and the exported function name
    (default `_start`, WASI stdin/stdout) for WASM modules.
    """

    CE_TYPE = "continuum.workload.spec.v1"

    name: str
    runtime: Runtime = "function"
    artifact: str
    artifact_digest: str | None = None
    entrypoint: str | None = None
    replicas: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    resources: ResourceRequest = msgspec.field(default_factory=ResourceRequest)
    node_selector: dict[str, str] = msgspec.field(default_factory=dict)
    tolerations: list[Toleration] = msgspec.field(default_factory=list)
    spread: ZoneSpread | None = None
    affinity: list[AffinityTerm] = msgspec.field(default_factory=list)
    anti_affinity: list[AffinityTerm] = msgspec.field(default_factory=list)
    latency: LatencyConstraint | None = None
    data_locality: DataLocality | None = None
    preference: Preference = "balanced"
    priority: int = 0
    concurrency: int = 8
    timeout_s: float = 30.0
    idle_timeout_s: float | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)


PlacementAction = Literal["start", "stop"]


class Placement(Event, kw_only=True):
    """Start or stop one replica on one node, on `ctm.placement.<node_id>`.

    `epoch` increases each time a scheduler becomes leader; `generation`
    increases with every placement decision within the cluster. An agent
    ignores an event whose (epoch, generation) is older than the newest one
    it applied for the same replica.
    """

    CE_TYPE = "continuum.placement.v1"

    action: PlacementAction
    node_id: str
    workload: str
    replica_id: str
    epoch: int
    generation: int
    spec: WorkloadSpec | None = None
    reason: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)


class PlacementFailed(Event, kw_only=True):
    """An unschedulable workload, with per-reason node counts, on `ctm.placement.failed`.

    `message` reads like "0/40 nodes fit: 25 insufficient memory, 10 no GPU".
    """

    CE_TYPE = "continuum.placement.failed.v1"

    workload: str
    message: str
    total_nodes: int
    reasons: dict[str, int] = msgspec.field(default_factory=dict)
    replicas_pending: int = 1
    epoch: int = 0
    at: datetime = msgspec.field(default_factory=utcnow)


# `idle` is a replica scaled to zero: its worker is stopped, but the agent keeps
# the queue subscription on `ctm.fn.<name>`, queues the next invocation and
# cold-starts the worker for it.
ReplicaState = Literal["pending", "pulling", "starting", "running", "idle", "failed", "stopped"]


class WorkloadStatus(Event, kw_only=True):
    """A replica state change, on `ctm.workload.<name>.status`.

    `cold_start_ms` is set on the transition to `running` and measures the
    time from the placement (or the held invocation) to the first readiness.
    """

    CE_TYPE = "continuum.workload.status.v1"

    workload: str
    replica_id: str
    node_id: str
    state: ReplicaState
    epoch: int = 0
    generation: int = 0
    cold_start_ms: float | None = None
    reason: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)


class ScaleRequest(Event, kw_only=True):
    """Request from an agent for more replicas of a busy function, on `ctm.api.autoscale`."""

    CE_TYPE = "continuum.workload.scale.v1"

    workload: str
    node_id: str = ""
    pending_invocations: int = 1
    at: datetime = msgspec.field(default_factory=utcnow)

"""Node telemetry and lifecycle events, published by edge agents."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from continuum.shared.schemas._base import Event, utcnow
from continuum.shared.schemas.common import Resources, Taint


class CpuStats(msgspec.Struct, kw_only=True):
    """CPU of the node: logical cores, utilisation in percent, 1/5/15-minute load."""

    cores: int
    utilization_pct: float
    load_avg: list[float] = msgspec.field(default_factory=list)


class MemoryStats(msgspec.Struct, kw_only=True):
    total_bytes: int
    available_bytes: int


class DiskStats(msgspec.Struct, kw_only=True):
    """Disk that holds the agent's state directory."""

    path: str
    total_bytes: int
    free_bytes: int


class GpuStats(msgspec.Struct, kw_only=True):
    """One GPU as NVML reports it."""

    index: int
    model: str
    uuid: str = ""
    memory_total_bytes: int = 0
    memory_used_bytes: int = 0
    utilization_pct: float = 0.0


class RttSample(msgspec.Struct, kw_only=True):
    """A measured round-trip time; `kind` says whether `target` is the NATS server, a node or a site."""

    target: str
    kind: Literal["nats", "node", "site", "zone"]
    rtt_ms: float


class ReplicaSummary(msgspec.Struct, kw_only=True):
    """Replica counts instead of a full inventory, so telemetry stays small.

    `by_workload` maps a workload to its running replicas on this node, and
    `by_state` counts replicas per state across all workloads.
    """

    total: int = 0
    by_state: dict[str, int] = msgspec.field(default_factory=dict)
    by_workload: dict[str, int] = msgspec.field(default_factory=dict)


class Telemetry(Event, kw_only=True):
    """One telemetry report from an agent on `ctm.telemetry.<node_id>`.

    `seq` increases by one per report for the life of the agent process, and
    `boot_id` changes when the agent restarts, so a consumer drops reports
    whose (boot_id, seq) is older than the last one it applied.
    """

    CE_TYPE = "continuum.telemetry.v1"

    node_id: str
    seq: int
    boot_id: str
    sent_at: datetime = msgspec.field(default_factory=utcnow)
    interval_s: float = 1.0
    zone: str = ""
    site: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: list[Taint] = msgspec.field(default_factory=list)
    cpu: CpuStats
    memory: MemoryStats
    disk: DiskStats | None = None
    gpus: list[GpuStats] = msgspec.field(default_factory=list)
    rtt: list[RttSample] = msgspec.field(default_factory=list)
    runtimes: list[str] = msgspec.field(default_factory=list)
    capacity: Resources
    allocatable: Resources
    replicas: ReplicaSummary = msgspec.field(default_factory=ReplicaSummary)
    draining: bool = False


LifecycleEvent = Literal["hello", "drain", "bye"]


class NodeLifecycle(Event, kw_only=True):
    """`hello` when an agent starts, `drain` and `bye` when it stops, on `ctm.node.<node_id>.lifecycle`."""

    CE_TYPE = "continuum.node.lifecycle.v1"

    node_id: str
    event: LifecycleEvent
    at: datetime = msgspec.field(default_factory=utcnow)
    boot_id: str = ""
    zone: str = ""
    site: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    agent_version: str = ""
    reason: str = ""

"""In-memory records of the scheduler: nodes and replica bindings.

`Binding` and `WorkloadBindings` are stored as JSON in the `ctm-bindings`
key-value bucket (one key per workload), so a new leader rebuilds every
replica's node, epoch and generation from there.
"""

from __future__ import annotations

import msgspec

from continuum.shared.schemas import Taint


class Binding(msgspec.Struct, kw_only=True):
    """One replica slot bound to a node.

    `previous_node` is set while a move or drain hands over: the old copy is
    stopped once the new one runs. `state` is the last state its node reported.
    """

    replica_id: str
    node_id: str
    epoch: int
    generation: int
    state: str = "pending"
    previous_node: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    moved_at: float = 0.0
    reason: str = ""
    # The agent's reason for the last `failed` report ("artifact 'x' not found ..."); cleared when it runs.
    error: str = ""
    # Wall-clock time of the first `running` report since the last failure; 0 when none.
    running_since: float = 0.0

    def crash_backoff(self, now: float, *, initial: float, maximum: float, reset_after: float) -> float:
        """Count one more failure and return the delay, in seconds, before the replica is placed again.

        The delay doubles per failure up to `maximum`. A replica that ran for
        `reset_after` seconds before it failed starts again at `initial`, so
        only a crash loop backs off. `now` is wall-clock time (time.time()).
        """
        if self.running_since and now - self.running_since >= reset_after:
            self.failures = 0
        self.running_since = 0.0
        delay = min(initial * 2**self.failures, maximum)
        self.failures += 1
        return delay


class WorkloadBindings(msgspec.Struct, kw_only=True):
    """Every replica of one workload, keyed by replica id (`<workload>-<index>`)."""

    workload: str
    replicas: dict[str, Binding] = msgspec.field(default_factory=dict)


class AutoscaleTarget(msgspec.Struct, kw_only=True):
    """Replica count requested by agents for a busy function, and when (Unix seconds)."""

    target: int
    at: float


class NodeSnapshot(msgspec.Struct, kw_only=True):
    """What the `ctm-nodes` bucket keeps per node, so a restarted scheduler never applies an older report."""

    node_id: str
    boot_id: str
    seq: int
    status: str
    sent_at: float = 0.0


class NodeAdmin(msgspec.Struct, kw_only=True):
    """Operator state of a node, kept in `ctm-nodes` under `admin.<node_id>`."""

    cordoned: bool = False
    draining: bool = False
    reason: str = ""


class NodeState:
    """A node as the scheduler sees it: the last applied telemetry, liveness and reservations."""

    __slots__ = (
        "node_id", "zone", "site", "labels", "taints", "runtimes", "gpu_models",
        "cpu_millis", "memory_mb", "gpus", "rtt", "boot_id", "seq", "sent_at",
        "interval_s", "last_seen", "status", "cordoned", "draining", "admin_draining", "drain_boot", "cordon_reason",
        "reserved_cpu", "reserved_memory", "reserved_gpus", "replicas", "rtt_violations",
        "collections", "buckets", "hard_taints", "soft_taints", "nats_rtt_ms", "tie_suffix",
    )

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        # CRC32 input after the replica id for the deterministic tie-break (see PlacementEngine).
        self.tie_suffix = f"/{node_id}".encode()
        self.zone = ""
        self.site = ""
        self.labels: dict[str, str] = {}
        self.taints: list[Taint] = []
        self.runtimes: frozenset[str] = frozenset()
        self.gpu_models: tuple[str, ...] = ()
        self.cpu_millis = 0
        self.memory_mb = 0
        self.gpus = 0
        # (kind, target) -> RTT in milliseconds.
        self.rtt: dict[tuple[str, str], float] = {}
        self.boot_id = ""
        self.seq = -1
        self.sent_at = 0.0
        self.interval_s = 1.0
        self.last_seen = 0.0
        self.status = "ready"
        self.cordoned = False
        # `draining` is kept equal to `admin_draining or drain_boot is not None` by `update_draining`.
        self.draining = False
        # Drained by an operator (`continuum drain`), kept in `ctm-nodes` under `admin.<node_id>`.
        self.admin_draining = False
        # The agent boot that asked to drain (lifecycle `drain` or `draining` telemetry); None when none did.
        # A report or hello from a newer boot clears it: that agent process is gone.
        self.drain_boot: str | None = None
        self.cordon_reason = ""
        self.reserved_cpu = 0
        self.reserved_memory = 0
        self.reserved_gpus = 0
        # replica id -> workload name, for every replica bound here (new or old copy).
        self.replicas: dict[str, str] = {}
        # (kind, target) -> monotonic time since which the RTT is above a constraint.
        self.rtt_violations: dict[tuple[str, str], float] = {}
        self.collections: frozenset[str] = frozenset()
        self.buckets: frozenset[str] = frozenset()
        # Derived from `taints` and `rtt` once per report, so placement does not recompute them per decision.
        self.hard_taints: tuple[Taint, ...] = ()
        self.soft_taints: tuple[Taint, ...] = ()
        self.nats_rtt_ms: float | None = None

    def update_draining(self) -> None:
        self.draining = self.admin_draining or self.drain_boot is not None

    @property
    def schedulable(self) -> bool:
        return self.status == "ready" and not self.cordoned and not self.draining

    def rtt_to(self, kind: str, target: str) -> float | None:
        """Return the RTT in ms to a zone or site; 0 when the node is in it, None when unmeasured."""
        if (kind == "zone" and self.zone == target) or (kind == "site" and self.site == target):
            return 0.0
        return self.rtt.get((kind, target))

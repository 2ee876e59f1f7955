"""Scheduler settings: the `[scheduler]` TOML table and `CONTINUUM_SCHEDULER_*` variables."""

from __future__ import annotations

import msgspec

from continuum.shared.config import load_section


class SchedulerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Liveness thresholds are counted in the node's own heartbeat interval (`interval_s` in its telemetry).

    A node is `suspect` after `suspect_after_intervals` without a report and
    `lost` after `lost_after_intervals`; only a lost node's replicas are
    re-placed. After this process starts observing the cluster it waits
    `lost_after_intervals` before declaring any node lost (startup grace).
    """

    suspect_after_intervals: float = 2.0
    lost_after_intervals: float = 3.0
    lease_ttl_s: float = 3.0
    reconcile_interval_s: float = 0.25
    # Feasible nodes to find before scoring stops filtering; 0 scores every node.
    nodes_to_score: int = 100
    # Unschedulable workloads: retry on a cluster change, at most this often.
    retry_backoff_initial_s: float = 1.0
    retry_backoff_max_s: float = 30.0
    # Failed replicas: crash-loop backoff before re-placing.
    crash_backoff_initial_s: float = 1.0
    crash_backoff_max_s: float = 300.0
    # A replica that ran this long before failing is not in a crash loop: its backoff starts over.
    crash_reset_after_s: float = 60.0
    # A latency-constrained replica moves after its node violates the constraint
    # for this long without a single sample back under the limit.
    rtt_violation_s: float = 10.0
    # A replica that moved stays put for at least this long.
    move_cooldown_s: float = 60.0
    # A drained or moved replica's old copy is stopped when the new copy runs, or after this long.
    handover_timeout_s: float = 60.0
    # Autoscaled functions drop one replica after this long without a scale request.
    scale_down_after_s: float = 300.0
    # Generations the leader reserves per write of the counter in `ctm-scheduler`.
    generation_block: int = 10_000


def load_scheduler_settings(path: str | None = None) -> SchedulerSettings:
    return load_section("scheduler", SchedulerSettings, path)

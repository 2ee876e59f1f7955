"""Small value types used by several message schemas."""

from __future__ import annotations

from typing import Literal

import msgspec

TaintEffect = Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Resources(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Compute resources: CPU in millicores, memory in MiB, whole GPUs."""

    cpu_millis: int = 0
    memory_mb: int = 0
    gpus: int = 0


class Taint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A node taint, as in Kubernetes: only tolerating workloads land there."""

    key: str
    value: str = ""
    effect: TaintEffect = "NoSchedule"


class Toleration(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A workload's toleration of a taint; `operator` is `Equal` or `Exists`."""

    key: str
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str = ""
    effect: TaintEffect | None = None

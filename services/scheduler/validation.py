"""Workload spec validation beyond the schema: every problem is collected, named by field."""

from __future__ import annotations

from continuum.shared.errors import SubjectError
from continuum.shared.schemas import WorkloadSpec
from continuum.shared.subjects import validate_name

MAX_REPLICAS = 10_000


def spec_problems(spec: WorkloadSpec) -> list[str]:
    """Return every problem of `spec` as `field: message`; an empty list means valid."""
    problems: list[str] = []
    try:
        validate_name(spec.name, kind="workload name")
    except SubjectError as exc:
        problems.append(f"name: {exc}")
    if not spec.artifact.strip():
        problems.append("artifact: empty; name an object in ctm-artifacts or an s3:// URI")

    problems.extend(_replica_problems(spec))
    problems.extend(_resource_problems(spec))
    problems.extend(_placement_problems(spec))
    if spec.concurrency < 1:
        problems.append(f"concurrency: {spec.concurrency} is below 1")
    if spec.timeout_s <= 0:
        problems.append(f"timeout_s: {spec.timeout_s} must be above 0")
    if spec.idle_timeout_s is not None and spec.idle_timeout_s <= 0:
        problems.append(f"idle_timeout_s: {spec.idle_timeout_s} must be above 0")
    return problems


def _replica_problems(spec: WorkloadSpec) -> list[str]:
    problems: list[str] = []
    autoscaled = spec.min_replicas is not None or spec.max_replicas is not None
    if spec.replicas is not None and autoscaled:
        problems.append("replicas: set either replicas or min_replicas/max_replicas, not both")
    if spec.replicas is not None and not 0 <= spec.replicas <= MAX_REPLICAS:
        problems.append(f"replicas: {spec.replicas} is outside 0..{MAX_REPLICAS}")
    if spec.min_replicas is not None and spec.min_replicas < 0:
        problems.append(f"min_replicas: {spec.min_replicas} is below 0")
    if spec.max_replicas is not None and not 1 <= spec.max_replicas <= MAX_REPLICAS:
        problems.append(f"max_replicas: {spec.max_replicas} is outside 1..{MAX_REPLICAS}")
    if (
        spec.min_replicas is not None
        and spec.max_replicas is not None
        and spec.min_replicas > spec.max_replicas
    ):
        problems.append(f"min_replicas: {spec.min_replicas} is above max_replicas {spec.max_replicas}")
    return problems


def _resource_problems(spec: WorkloadSpec) -> list[str]:
    problems: list[str] = []
    resources = spec.resources
    if resources.cpu_millis < 0:
        problems.append(f"resources.cpu_millis: {resources.cpu_millis} is below 0")
    if resources.memory_mb < 0:
        problems.append(f"resources.memory_mb: {resources.memory_mb} is below 0")
    if resources.gpus < 0:
        problems.append(f"resources.gpus: {resources.gpus} is below 0")
    if resources.gpu_model and resources.gpus == 0:
        problems.append(f"resources.gpu_model: {resources.gpu_model!r} is set but resources.gpus is 0")
    return problems


def _placement_problems(spec: WorkloadSpec) -> list[str]:
    problems: list[str] = []
    if spec.spread is not None and spec.spread.max_skew < 1:
        problems.append(f"spread.max_skew: {spec.spread.max_skew} is below 1")
    for field_name, terms in (("affinity", spec.affinity), ("anti_affinity", spec.anti_affinity)):
        for index, term in enumerate(terms):
            try:
                validate_name(term.workload, kind="workload name")
            except SubjectError as exc:
                problems.append(f"{field_name}[{index}].workload: {exc}")
            if field_name == "affinity" and term.workload == spec.name:
                problems.append(f"affinity[{index}].workload: a workload cannot require affinity with itself")
    if spec.latency is not None:
        if not spec.latency.target:
            problems.append("latency.target: empty; name a zone or site")
        if spec.latency.max_rtt_ms <= 0:
            problems.append(f"latency.max_rtt_ms: {spec.latency.max_rtt_ms} must be above 0")
    locality = spec.data_locality
    if locality is not None and not (locality.collection or locality.bucket):
        problems.append("data_locality: set collection or bucket")
    for index, toleration in enumerate(spec.tolerations):
        if toleration.operator == "Exists" and toleration.value:
            problems.append(f"tolerations[{index}].value: must be empty with operator Exists")
    return problems


def desired_floor(spec: WorkloadSpec) -> int:
    """Return the replica count the scheduler keeps bound without demand.

    `min_replicas: 0` still binds one replica, which the agent scales to zero
    (state `idle`) while no invocation arrives.
    """
    if spec.replicas is not None:
        return spec.replicas
    if spec.min_replicas is None:
        return 1
    return max(spec.min_replicas, 1)


def desired_ceiling(spec: WorkloadSpec) -> int:
    if spec.replicas is not None:
        return spec.replicas
    if spec.max_replicas is not None:
        return max(spec.max_replicas, desired_floor(spec))
    return desired_floor(spec)

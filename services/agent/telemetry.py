"""Measuring this node: CPU, memory, disk, GPUs, runtimes and allocatable resources.

Every value comes from psutil or NVML at the time of the report; nothing is
estimated. A node without an NVIDIA driver reports an empty GPU list.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable

import psutil

from continuum.shared.schemas.common import Resources
from continuum.shared.schemas.telemetry import CpuStats, DiskStats, GpuStats, MemoryStats, ReplicaSummary

logger = logging.getLogger(__name__)

MIB = 1024 * 1024

# Runtimes this agent can run; the container runtime is detected but not implemented.
SUPPORTED_RUNTIMES = ("function", "wasm")


def cpu_stats() -> CpuStats:
    """Logical cores, utilisation since the previous call, and the 1/5/15-minute load average."""
    cores = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return CpuStats(
        cores=cores,
        utilization_pct=psutil.cpu_percent(interval=None),
        load_avg=[round(value, 3) for value in psutil.getloadavg()],
    )


def memory_stats() -> MemoryStats:
    memory = psutil.virtual_memory()
    return MemoryStats(total_bytes=memory.total, available_bytes=memory.available)


def disk_stats(path: str) -> DiskStats:
    usage = psutil.disk_usage(path)
    return DiskStats(path=path, total_bytes=usage.total, free_bytes=usage.free)


class GpuProbe:
    """NVML access that degrades to "no GPUs" when the library or the driver is missing."""

    def __init__(self) -> None:
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
        except Exception as exc:  # noqa: BLE001 - no driver is the normal case on most edge nodes
            logger.info("no NVIDIA GPUs reported: %s", exc)

    def read(self) -> list[GpuStats]:
        if self._nvml is None:
            return []
        nvml = self._nvml
        gpus = []
        try:
            for index in range(nvml.nvmlDeviceGetCount()):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                utilization = nvml.nvmlDeviceGetUtilizationRates(handle)
                name = nvml.nvmlDeviceGetName(handle)
                uuid = nvml.nvmlDeviceGetUUID(handle)
                gpus.append(
                    GpuStats(
                        index=index,
                        model=name.decode() if isinstance(name, bytes) else name,
                        uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
                        memory_total_bytes=int(memory.total),
                        memory_used_bytes=int(memory.used),
                        utilization_pct=float(utilization.gpu),
                    )
                )
        except Exception:  # noqa: BLE001 - a failing driver call must not stop telemetry
            logger.warning("reading GPUs through NVML failed", exc_info=True)
        return gpus

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                logger.debug("nvmlShutdown failed", exc_info=True)


def container_engine() -> str | None:
    """Return the path of docker or podman when one is installed."""
    for name in ("docker", "podman"):
        found = shutil.which(name)
        if found:
            return found
    return None


def capacity(cpu: CpuStats, memory: MemoryStats, gpus: list[GpuStats]) -> Resources:
    return Resources(cpu_millis=cpu.cores * 1000, memory_mb=memory.total_bytes // MIB, gpus=len(gpus))


def allocatable(total: Resources, reserved: Resources, requests: Iterable[Resources]) -> Resources:
    """Capacity minus the reservation and the requests of active replicas, never below zero."""
    cpu = total.cpu_millis - reserved.cpu_millis
    memory = total.memory_mb - reserved.memory_mb
    gpus = total.gpus - reserved.gpus
    for request in requests:
        cpu -= request.cpu_millis
        memory -= request.memory_mb
        gpus -= request.gpus
    return Resources(cpu_millis=max(cpu, 0), memory_mb=max(memory, 0), gpus=max(gpus, 0))


def summarize(states: Iterable[tuple[str, str]]) -> ReplicaSummary:
    """Summarise (workload, state) pairs: counts per state, and running replicas per workload."""
    by_state: Counter[str] = Counter()
    by_workload: Counter[str] = Counter()
    total = 0
    for workload, state in states:
        total += 1
        by_state[state] += 1
        if state in ("running", "idle"):
            by_workload[workload] += 1
    return ReplicaSummary(total=total, by_state=dict(by_state), by_workload=dict(by_workload))

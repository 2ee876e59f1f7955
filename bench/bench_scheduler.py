"""Scheduler benchmarks: in-process placement rate and decision latency, and telemetry ingest CPU.

Run with `.venv/bin/python -m bench.run scheduler`.
"""

from __future__ import annotations

import time

from bench.harness import Result, summarize_ms

from continuum.services.scheduler.cluster import Cluster
from continuum.services.scheduler.engine import PlacementEngine
from continuum.services.scheduler.registry import NodeRegistry
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared.schemas import CpuStats, MemoryStats, Resources, RttSample, Telemetry, WorkloadSpec, decode, encode


def _report(index: int, seq: int) -> Telemetry:
    return Telemetry(
        node_id=f"node-{index}",
        seq=seq,
        boot_id="b",
        zone=f"zone-{index % 10}",
        site=f"site-{index % 50}",
        cpu=CpuStats(cores=8, utilization_pct=20.0),
        memory=MemoryStats(total_bytes=16 << 30, available_bytes=8 << 30),
        rtt=[RttSample(target="zone-0", kind="zone", rtt_ms=float(index % 40))],
        runtimes=["function", "wasm"],
        capacity=Resources(cpu_millis=8000, memory_mb=16384),
        allocatable=Resources(cpu_millis=8000, memory_mb=16384),
    )


def _placement(nodes: int, replicas: int) -> list[Result]:
    settings = SchedulerSettings()
    registry = NodeRegistry(settings)
    for index in range(nodes):
        registry.apply_telemetry(_report(index, 1))
    cluster = Cluster(registry)
    engine = PlacementEngine(cluster, settings)
    spec = WorkloadSpec(name="bench", artifact="a", replicas=replicas)
    cluster.specs["bench"] = spec
    samples = []
    started = time.perf_counter()
    for index in range(replicas):
        t0 = time.perf_counter()
        decision = engine.decide(spec, f"bench-{index}")
        samples.append(time.perf_counter() - t0)
        assert decision.node_id is not None
        cluster.reserve("bench", f"bench-{index}", decision.node_id)
    rate = replicas / (time.perf_counter() - started)
    latency = summarize_ms(samples)
    return [
        Result(f"placements/s, {nodes} nodes, in-process", rate, "1/s", goal=">= 5000 at 10,000 nodes", met=rate >= 5000 if nodes >= 10_000 else None),
        Result(f"decision p50, {nodes} nodes", latency["p50"], "ms"),
        Result(f"decision p99, {nodes} nodes", latency["p99"], "ms", goal="< 5 ms at 10,000 nodes", met=latency["p99"] < 5 if nodes >= 10_000 else None),
    ]


def _ingest(nodes: int, seconds: int) -> Result:
    """CPU to decode and apply `nodes` reports per simulated second (the bus delivery itself is not counted)."""
    registry = NodeRegistry(SchedulerSettings())
    payloads = [[encode(_report(index, seq)) for index in range(nodes)] for seq in range(1, seconds + 1)]
    started = time.process_time()
    for batch in payloads:
        for payload in batch:
            registry.apply_telemetry(decode(payload, Telemetry))
        registry.check_liveness()
    cpu_per_second = (time.process_time() - started) / seconds
    return Result(f"telemetry ingest CPU, {nodes} nodes at 1 Hz", cpu_per_second, "core", goal="< 0.25 core", met=cpu_per_second < 0.25,
                  notes="decode + apply + liveness in process; NATS client overhead not included")


async def run(quick: bool) -> list[Result]:
    results = []
    for nodes in (1_000, 10_000):
        results.extend(_placement(nodes, 1_000 if quick else 5_000))
    results.append(_ingest(10_000, 2 if quick else 10))
    # TODO: through-NATS placement rate and agent-death-to-replacement time are not measured yet.
    return results

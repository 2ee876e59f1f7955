"""Filters and scores on hand-built clusters, without NATS."""

from __future__ import annotations

from scheduler_support import telemetry

from continuum.services.scheduler.cluster import Cluster
from continuum.services.scheduler.engine import PlacementEngine
from continuum.services.scheduler.registry import NodeRegistry
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.services.scheduler.validation import spec_problems
from continuum.shared.schemas import AffinityTerm, DataLocality, LatencyConstraint, ResourceRequest, Taint, Toleration, WorkloadSpec, ZoneSpread


def build(*reports) -> tuple[Cluster, PlacementEngine]:  # type: ignore[no-untyped-def]
    registry = NodeRegistry(SchedulerSettings())
    for report in reports:
        registry.apply_telemetry(report)
    cluster = Cluster(registry)
    return cluster, PlacementEngine(cluster, SchedulerSettings())


def place(cluster: Cluster, engine: PlacementEngine, spec: WorkloadSpec, count: int) -> list[str | None]:
    cluster.specs[spec.name] = spec
    chosen = []
    for index in range(count):
        decision = engine.decide(spec, f"{spec.name}-{index}")
        chosen.append(decision.node_id)
        if decision.node_id:
            cluster.reserve(spec.name, f"{spec.name}-{index}", decision.node_id)
    return chosen


def test_gpu_workload_lands_only_on_gpu_nodes() -> None:
    cluster, engine = build(telemetry("cpu-1"), telemetry("cpu-2"), telemetry("gpu-1", gpus=1))
    spec = WorkloadSpec(name="llm", artifact="a", resources=ResourceRequest(gpus=1))
    assert place(cluster, engine, spec, 1) == ["gpu-1"]
    second = engine.decide(spec, "llm-1")
    assert second.node_id is None
    assert second.message == "0/3 nodes fit: 2 no GPU, 1 insufficient GPU"


def test_gpu_model_mismatch_rejected() -> None:
    cluster, engine = build(telemetry("gpu-1", gpus=1, gpu_model="NVIDIA T4"))
    decision = engine.decide(WorkloadSpec(name="llm", artifact="a", resources=ResourceRequest(gpus=1, gpu_model="A100")), "llm-0")
    assert decision.reasons == {"no A100 GPU": 1}


def test_node_selector_filters_nodes() -> None:
    cluster, engine = build(telemetry("a", labels={"arch": "arm64"}), telemetry("b", labels={"arch": "amd64"}))
    spec = WorkloadSpec(name="w", artifact="a", node_selector={"arch": "arm64"}, replicas=2)
    assert place(cluster, engine, spec, 2) == ["a", "a"]


def test_taint_requires_toleration() -> None:
    tainted = [Taint(key="dedicated", value="ml")]
    cluster, engine = build(telemetry("t", taints=tainted))
    plain = WorkloadSpec(name="w", artifact="a")
    assert engine.decide(plain, "w-0").reasons == {"untolerated taint dedicated": 1}
    tolerant = WorkloadSpec(name="v", artifact="a", tolerations=[Toleration(key="dedicated", value="ml")])
    assert engine.decide(tolerant, "v-0").node_id == "t"


def test_spread_balances_zones() -> None:
    cluster, engine = build(
        telemetry("a1", zone="a", cpu_millis=64000, memory_mb=65536),
        telemetry("b1", zone="b"),
        telemetry("c1", zone="c"),
    )
    spec = WorkloadSpec(name="w", artifact="a", spread=ZoneSpread(max_skew=1), replicas=6)
    chosen = place(cluster, engine, spec, 6)
    zones = sorted(cluster.nodes[node].zone for node in chosen if node)
    assert zones == ["a", "a", "b", "b", "c", "c"]


def test_anti_affinity_keeps_one_replica_per_node() -> None:
    cluster, engine = build(telemetry("n1"), telemetry("n2"))
    spec = WorkloadSpec(name="db", artifact="a", anti_affinity=[AffinityTerm(workload="db")])
    chosen = place(cluster, engine, spec, 3)
    assert sorted(chosen[:2]) == ["n1", "n2"]
    assert chosen[2] is None


def test_latency_constraint_filters_far_nodes() -> None:
    cluster, engine = build(
        telemetry("near", zone="zone-b", rtt={"zone-a": 8.0}),
        telemetry("far", zone="zone-c", rtt={"zone-a": 45.0}),
        telemetry("blind", zone="zone-d"),
    )
    spec = WorkloadSpec(name="w", artifact="a", latency=LatencyConstraint(target="zone-a", max_rtt_ms=20))
    decision = engine.decide(spec, "w-0")
    assert decision.node_id == "near"
    assert engine.decide(spec, "w-0", exclude=frozenset({"near"})).message == (
        "0/3 nodes fit: 1 excluded after failures, 1 latency to zone-a above 20 ms, 1 no RTT measurement to zone-a"
    )


def test_data_locality_prefers_site_with_collection() -> None:
    cluster, engine = build(
        telemetry("store", site="lyon", labels={"continuum.io/collections": "docs,faq"}, cpu_millis=1000, memory_mb=1024),
        telemetry("compute-lyon", site="lyon"),
        telemetry("compute-paris", site="paris", cpu_millis=64000, memory_mb=65536),
    )
    spec = WorkloadSpec(name="rag", artifact="a", data_locality=DataLocality(collection="docs"))
    assert cluster.nodes["store"].collections == frozenset({"docs", "faq"})
    assert engine.decide(spec, "rag-0").node_id in {"store", "compute-lyon"}


def test_cost_packs_and_latency_spreads_by_rtt() -> None:
    cluster, engine = build(
        telemetry("busy", cpu_millis=4000, memory_mb=4096, rtt={"zone-x": 50.0}),
        telemetry("empty", cpu_millis=64000, memory_mb=65536, rtt={"zone-x": 5.0}),
    )
    cluster.specs["filler"] = WorkloadSpec(name="filler", artifact="a", resources=ResourceRequest(cpu_millis=2000, memory_mb=2048))
    cluster.reserve("filler", "filler-0", "busy")
    cost = WorkloadSpec(name="c", artifact="a", preference="cost")
    latency = WorkloadSpec(name="l", artifact="a", preference="latency", latency=LatencyConstraint(target="zone-x", max_rtt_ms=100))
    assert engine.decide(cost, "c-0").node_id == "busy"
    assert engine.decide(latency, "l-0").node_id == "empty"


def test_invalid_spec_lists_every_problem() -> None:
    spec = WorkloadSpec(
        name="bad.name",
        artifact=" ",
        replicas=3,
        min_replicas=5,
        max_replicas=2,
        resources=ResourceRequest(cpu_millis=-1, gpu_model="A100"),
        latency=LatencyConstraint(target="", max_rtt_ms=0),
    )
    fields = [problem.split(":", 1)[0] for problem in spec_problems(spec)]
    assert fields == [
        "name",
        "artifact",
        "replicas",
        "min_replicas",
        "resources.cpu_millis",
        "resources.gpu_model",
        "latency.target",
        "latency.max_rtt_ms",
    ]


def test_pick_matches_explain_ranking() -> None:
    reports = [telemetry(f"same-{index}") for index in range(20)]
    reports += [telemetry(f"big-{index}", cpu_millis=8000, memory_mb=16384, zone="zone-b") for index in range(5)]
    cluster, engine = build(*reports)
    spec = WorkloadSpec(name="w", artifact="a", replicas=40)
    cluster.specs["w"] = spec

    for index in range(40):
        replica_id = f"w-{index}"
        ranked = engine.decide(spec, replica_id, explain=True)
        picked = engine.decide(spec, replica_id)
        assert picked.node_id == ranked.node_id, replica_id
        assert picked.node_id is not None
        cluster.reserve("w", replica_id, picked.node_id)


def test_explain_single_node_scores_full_marks() -> None:
    cluster, engine = build(telemetry("solo"))
    spec = WorkloadSpec(name="w", artifact="a", replicas=1)
    cluster.specs["w"] = spec

    ranked = engine.decide(spec, "w-0", explain=True)

    node_id, total, scores = ranked.scores[0]
    assert node_id == "solo"
    assert total == 100.0
    assert scores
    assert set(scores.values()) == {100.0}

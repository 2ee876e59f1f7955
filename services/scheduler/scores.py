"""Score plugins: raw values where higher is better, normalised to 0-100 over the candidates.

Each plugin's weight depends on the workload's `preference`: `cost`
bin-packs (most allocated wins), `latency` favours the lowest RTT, and
`balanced` weighs free resources, RTT, spread and data locality alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from continuum.services.scheduler.model import NodeState

if TYPE_CHECKING:
    from continuum.services.scheduler.engine import PlacementContext

Score = Callable[["PlacementContext", NodeState], float]

# RTT used for a node without a measurement, in ms: worse than any real edge link.
UNMEASURED_RTT_MS = 10_000.0


def _free_fraction(ctx: PlacementContext, node: NodeState) -> float:
    wanted = ctx.spec.resources
    cpu = (node.cpu_millis - node.reserved_cpu - wanted.cpu_millis) / node.cpu_millis if node.cpu_millis else 0.0
    memory = (node.memory_mb - node.reserved_memory - wanted.memory_mb) / node.memory_mb if node.memory_mb else 0.0
    return (cpu + memory) / 2


def least_allocated(ctx: PlacementContext, node: NodeState) -> float:
    return _free_fraction(ctx, node)


def most_allocated(ctx: PlacementContext, node: NodeState) -> float:
    return -_free_fraction(ctx, node)


def low_latency(ctx: PlacementContext, node: NodeState) -> float:
    """RTT to the latency constraint's target, else to the NATS server the agent reports."""
    constraint = ctx.spec.latency
    if constraint is not None:
        rtt = node.rtt_to(constraint.kind, constraint.target)
    else:
        rtt = node.rtt.get(("nats", "nats"))
        if rtt is None and node.rtt:
            rtt = min((value for (kind, _), value in node.rtt.items() if kind == "nats"), default=None)
    return -(rtt if rtt is not None else UNMEASURED_RTT_MS)


def spread_replicas(ctx: PlacementContext, node: NodeState) -> float:
    """Fewer replicas of this workload in the node's zone, then on the node itself."""
    name = ctx.spec.name
    zone_key = ctx.spec.spread.topology_key if ctx.spec.spread else "zone"
    domain = node.zone if zone_key == "zone" else node.site
    return -(ctx.cluster.count(name, zone_key, domain) * 10 + ctx.cluster.count(name, "node", node.node_id))


def preferred_affinity(ctx: PlacementContext, node: NodeState) -> float:
    total = 0.0
    for term in ctx.spec.affinity:
        if not term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)):
            total += 1
    for term in ctx.spec.anti_affinity:
        if not term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)):
            total -= 1
    return total


def data_locality(ctx: PlacementContext, node: NodeState) -> float:
    return 1.0 if node.site and node.site in ctx.data_sites() else 0.0


def prefer_no_schedule(ctx: PlacementContext, node: NodeState) -> float:
    return -sum(1 for taint in node.taints if taint.effect == "PreferNoSchedule" and not ctx.tolerates(taint))


def _domain(node: NodeState, key: str) -> str:
    if key == "node":
        return node.node_id
    return node.zone if key == "zone" else node.site


SCORES: dict[str, Score] = {
    "least_allocated": least_allocated,
    "most_allocated": most_allocated,
    "latency": low_latency,
    "spread": spread_replicas,
    "affinity": preferred_affinity,
    "data_locality": data_locality,
    "taints": prefer_no_schedule,
}

WEIGHTS: dict[str, dict[str, float]] = {
    "balanced": {"least_allocated": 2, "latency": 2, "spread": 2, "affinity": 2, "data_locality": 2, "taints": 1},
    "latency": {"least_allocated": 1, "latency": 6, "spread": 1, "affinity": 2, "data_locality": 2, "taints": 1},
    "cost": {"most_allocated": 6, "latency": 1, "spread": 0, "affinity": 2, "data_locality": 1, "taints": 1},
}


def active_scores(ctx: PlacementContext) -> list[tuple[str, Score, float]]:
    """Return (name, plugin, weight) for plugins that can tell this spec's candidates apart."""
    spec = ctx.spec
    weights = WEIGHTS[spec.preference]
    chosen = []
    for name, weight in weights.items():
        if weight == 0:
            continue
        if name == "affinity" and not any(not t.required for t in (*spec.affinity, *spec.anti_affinity)):
            continue
        if name == "data_locality" and spec.data_locality is None:
            continue
        chosen.append((name, SCORES[name], weight))
    return chosen

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

# A plugin returns one raw value per candidate, in the candidates' order. It takes the whole
# list so that each plugin is one loop over plain attributes, not one call per node.
Score = Callable[["PlacementContext", list[NodeState]], list[float]]

# RTT used for a node without a measurement, in ms: worse than any real edge link.
UNMEASURED_RTT_MS = 10_000.0


def _free_fractions(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    """Return each node's free CPU fraction plus free memory fraction after this replica (0 to 2)."""
    cpu, memory = ctx.cpu_millis, ctx.memory_mb
    return [
        ((node.cpu_millis - node.reserved_cpu - cpu) / node.cpu_millis if node.cpu_millis else 0.0)
        + ((node.memory_mb - node.reserved_memory - memory) / node.memory_mb if node.memory_mb else 0.0)
        for node in nodes
    ]


def least_allocated(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    return _free_fractions(ctx, nodes)


def most_allocated(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    return [-value for value in _free_fractions(ctx, nodes)]


def low_latency(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    """RTT to the latency constraint's target, else to the NATS server the agent reports."""
    constraint = ctx.spec.latency
    values = []
    for node in nodes:
        rtt = node.rtt_to(constraint.kind, constraint.target) if constraint is not None else node.nats_rtt_ms
        values.append(-(rtt if rtt is not None else UNMEASURED_RTT_MS))
    return values


def spread_replicas(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    """Fewer replicas of this workload in the node's zone, then on the node itself."""
    counts = ctx.cluster.placed.get(ctx.spec.name)
    if not counts:
        return [0.0] * len(nodes)
    by_zone = ctx.spec.spread is None or ctx.spec.spread.topology_key == "zone"
    key = "zone" if by_zone else "site"
    return [
        -(counts.get((key, node.zone if by_zone else node.site), 0) * 10 + counts.get(("node", node.node_id), 0))
        for node in nodes
    ]


def preferred_affinity(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    values = []
    for node in nodes:
        total = 0.0
        for term in ctx.spec.affinity:
            if not term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)):
                total += 1
        for term in ctx.spec.anti_affinity:
            if not term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)):
                total -= 1
        values.append(total)
    return values


def data_locality(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    sites = ctx.data_sites()
    return [1.0 if node.site and node.site in sites else 0.0 for node in nodes]


def prefer_no_schedule(ctx: PlacementContext, nodes: list[NodeState]) -> list[float]:
    values = []
    for node in nodes:
        untolerated = 0
        for taint in node.soft_taints:
            if not ctx.tolerates(taint):
                untolerated += 1
        values.append(-untolerated)
    return values


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

"""Filter plugins: each returns None when a node fits, or the reason it does not.

Reasons are short and shared by many nodes, so `PlacementFailed` can count
them: "insufficient memory", "no GPU", "latency to zone-a above 20 ms".
Filters run in the order of `build_filters`, cheapest and most selective
first; a node is counted under the first reason that rejects it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from continuum.services.scheduler.model import NodeState

if TYPE_CHECKING:
    from continuum.services.scheduler.engine import PlacementContext

Filter = Callable[["PlacementContext", NodeState], str | None]


def node_fits(ctx: PlacementContext, node: NodeState) -> str | None:
    """Check the node's own state and free resources: ready, runtime, selector, taints, GPUs, CPU, memory.

    These checks run for every spec on every examined node, so they share one
    call, and the spec's side is prepared once per decision in `ctx`.
    """
    if node.node_id in ctx.exclude:
        return "excluded after failures"
    if node.status != "ready":
        return f"node {node.status}"
    if node.cordoned:
        return "node cordoned"
    if node.draining:
        return "node draining"
    if ctx.runtime not in node.runtimes:
        return f"no {ctx.runtime} runtime"

    if ctx.selector:
        labels = node.labels
        for key, value in ctx.selector:
            if labels.get(key) != value:
                return "node selector mismatch"
    for taint in node.hard_taints:
        if not ctx.tolerates(taint):
            return f"untolerated taint {taint.key}"

    if ctx.gpus:
        if node.gpus == 0:
            return "no GPU"
        if ctx.gpu_model and not any(ctx.gpu_model in model.lower() for model in node.gpu_models):
            return f"no {ctx.spec.resources.gpu_model} GPU"
        if node.gpus - node.reserved_gpus < ctx.gpus:
            return "insufficient GPU"
    if node.cpu_millis - node.reserved_cpu < ctx.cpu_millis:
        return "insufficient CPU"
    if node.memory_mb - node.reserved_memory < ctx.memory_mb:
        return "insufficient memory"
    return None


def latency(ctx: PlacementContext, node: NodeState) -> str | None:
    constraint = ctx.spec.latency
    assert constraint is not None
    rtt = node.rtt_to(constraint.kind, constraint.target)
    if rtt is None:
        return f"no RTT measurement to {constraint.target}"
    if rtt > constraint.max_rtt_ms:
        return f"latency to {constraint.target} above {constraint.max_rtt_ms:g} ms"
    return None


def spread(ctx: PlacementContext, node: NodeState) -> str | None:
    rule = ctx.spec.spread
    assert rule is not None
    domain = node.zone if rule.topology_key == "zone" else node.site
    after = ctx.cluster.count(ctx.spec.name, rule.topology_key, domain) + 1
    if after - ctx.spread_minimum() > rule.max_skew:
        return f"{rule.topology_key} spread skew above {rule.max_skew}"
    return None


def anti_affinity(ctx: PlacementContext, node: NodeState) -> str | None:
    for term in ctx.spec.anti_affinity:
        if term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)) > 0:
            return f"anti-affinity with {term.workload}"
    return None


def affinity(ctx: PlacementContext, node: NodeState) -> str | None:
    for term in ctx.spec.affinity:
        if term.required and ctx.cluster.count(term.workload, term.topology_key, _domain(node, term.topology_key)) == 0:
            return f"no {term.workload} replica in the same {term.topology_key}"
    return None


def _domain(node: NodeState, key: str) -> str:
    if key == "node":
        return node.node_id
    return node.zone if key == "zone" else node.site


def build_filters(ctx: PlacementContext) -> list[Filter]:
    """Return the filters that apply to this spec; checks a spec does not ask for are left out."""
    spec = ctx.spec
    chosen: list[Filter] = [node_fits]
    if spec.latency is not None:
        chosen.append(latency)
    if spec.spread is not None:
        chosen.append(spread)
    if any(term.required for term in spec.anti_affinity):
        chosen.append(anti_affinity)
    if any(term.required for term in spec.affinity):
        chosen.append(affinity)
    return chosen

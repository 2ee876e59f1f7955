"""The placement engine: filter, score, pick, with a deterministic tie-break.

Filtering starts at a rotating offset and stops once `nodes_to_score`
feasible nodes are found (the approach of kube-scheduler's
percentageOfNodesToScore), so a decision costs about the same at 1,000 and
10,000 nodes. When fewer nodes fit, every node is examined, so an
unschedulable workload's reason counts cover the whole cluster.
"""

from __future__ import annotations

import zlib
from collections import Counter
from dataclasses import dataclass, field

from continuum.services.scheduler.cluster import Cluster
from continuum.services.scheduler.filters import build_filters
from continuum.services.scheduler.model import NodeState
from continuum.services.scheduler.scores import active_scores
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared.schemas import Taint, WorkloadSpec


@dataclass
class Decision:
    """The outcome for one replica: `node_id`, or None with the per-reason node counts."""

    node_id: str | None
    total_nodes: int
    feasible: int
    reasons: Counter[str] = field(default_factory=Counter)
    scores: list[tuple[str, float, dict[str, float]]] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [f"{count} {reason}" for reason, count in sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))]
        fit = f"{self.feasible}/{self.total_nodes} nodes fit"
        return f"{fit}: {', '.join(parts)}" if parts else fit


class PlacementContext:
    """Per-decision inputs the plugins share; derived values are computed once and cached."""

    def __init__(self, cluster: Cluster, spec: WorkloadSpec, exclude: frozenset[str] = frozenset()) -> None:
        self.cluster = cluster
        self.spec = spec
        self.exclude = exclude
        resources = spec.resources
        self.runtime = spec.runtime
        self.cpu_millis = resources.cpu_millis
        self.memory_mb = resources.memory_mb
        self.gpus = resources.gpus
        self.gpu_model = resources.gpu_model.lower() if resources.gpu_model else ""
        self.selector = tuple(spec.node_selector.items())
        self._spread_minimum: int | None = None
        self._data_sites: frozenset[str] | None = None

    def tolerates(self, taint: Taint) -> bool:
        for toleration in self.spec.tolerations:
            if toleration.key != taint.key:
                continue
            if toleration.effect is not None and toleration.effect != taint.effect:
                continue
            if toleration.operator == "Exists" or toleration.value == taint.value:
                return True
        return False

    def spread_minimum(self) -> int:
        """Return the fewest replicas of this workload in any domain that has a schedulable node."""
        if self._spread_minimum is None:
            rule = self.spec.spread
            assert rule is not None
            domains = {
                (node.zone if rule.topology_key == "zone" else node.site)
                for node in self.cluster.nodes.values()
                if node.schedulable
            }
            self._spread_minimum = min(
                (self.cluster.count(self.spec.name, rule.topology_key, domain) for domain in domains), default=0
            )
        return self._spread_minimum

    def data_sites(self) -> frozenset[str]:
        """Return the sites with a node that holds the spec's collection or bucket."""
        if self._data_sites is None:
            locality = self.spec.data_locality
            sites = set()
            if locality is not None:
                for node in self.cluster.nodes.values():
                    if (locality.collection and locality.collection in node.collections) or (
                        locality.bucket and locality.bucket in node.buckets
                    ):
                        sites.add(node.site)
            self._data_sites = frozenset(sites)
        return self._data_sites


class PlacementEngine:
    def __init__(self, cluster: Cluster, settings: SchedulerSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self._order: list[NodeState] = []
        self._order_size = -1
        self._next_start = 0

    def _nodes(self) -> list[NodeState]:
        nodes = self.cluster.nodes
        if len(nodes) != self._order_size:
            self._order = [nodes[node_id] for node_id in sorted(nodes)]
            self._order_size = len(nodes)
        return self._order

    def decide(
        self, spec: WorkloadSpec, replica_id: str, *, exclude: frozenset[str] = frozenset(), explain: bool = False
    ) -> Decision:
        """Choose a node for one replica of `spec`; `explain` scores every feasible node."""
        ctx = PlacementContext(self.cluster, spec, exclude)
        filters = build_filters(ctx)
        nodes = self._nodes()
        total = len(nodes)
        limit = 0 if explain else self.settings.nodes_to_score
        reasons: Counter[str] = Counter()
        feasible: list[NodeState] = []

        start = self._next_start % total if total else 0
        examined = 0
        for index in range(start, start + total):
            node = nodes[index - total if index >= total else index]
            examined += 1
            for check in filters:
                reason = check(ctx, node)
                if reason is not None:
                    reasons[reason] += 1
                    break
            else:
                feasible.append(node)
                if limit and len(feasible) >= limit:
                    break
        self._next_start = start + examined

        if not feasible:
            return Decision(None, total, 0, reasons)
        if explain:
            ranked = self._rank(ctx, replica_id, feasible)
            return Decision(ranked[0][0], total, len(feasible), reasons, ranked)
        return Decision(self._pick(ctx, replica_id, feasible), total, len(feasible), reasons)

    def _totals(
        self, ctx: PlacementContext, feasible: list[NodeState], details: list[dict[str, float]] | None
    ) -> tuple[list[float], float]:
        """Return each candidate's weighted sum of normalised scores, and the sum of the weights."""
        plugins = active_scores(ctx)
        totals = [0.0] * len(feasible)
        for name, plugin, weight in plugins:
            raw = plugin(ctx, feasible)
            low, high = min(raw), max(raw)
            if high == low:
                # Every candidate is equally good here: all score the maximum. The order
                # does not change, but `explain` shows 100 instead of a misleading 0.
                totals = [total + weight * 100.0 for total in totals]
                if details is not None:
                    for detail in details:
                        detail[name] = 100.0
                continue
            scale = 100.0 / (high - low)
            weighted = weight * scale
            totals = [total + (value - low) * weighted for total, value in zip(totals, raw)]
            if details is not None:
                for detail, value in zip(details, raw):
                    detail[name] = round((value - low) * scale, 2)
        weight_sum = sum(weight for _, _, weight in plugins) or 1.0
        return totals, weight_sum

    def _pick(self, ctx: PlacementContext, replica_id: str, feasible: list[NodeState]) -> str:
        """Return the best candidate without sorting: the top score, ties broken by the CRC32 of replica and node id."""
        totals, weight_sum = self._totals(ctx, feasible, None)
        best = round(max(totals) / weight_sum, 4)
        # Scores are compared rounded to 4 decimals, as `_rank` shows them. Rounding is monotonic,
        # so only totals near the maximum need the exact check.
        floor = (best - 0.0001) * weight_sum
        tied = [node for node, total in zip(feasible, totals) if total >= floor and round(total / weight_sum, 4) == best]
        if len(tied) == 1:
            return tied[0].node_id
        # zlib.crc32 continues from a running value, so this equals the CRC32 of "<replica_id>/<node_id>".
        replica_crc = zlib.crc32(replica_id.encode())
        return min(tied, key=lambda node: zlib.crc32(node.tie_suffix, replica_crc)).node_id

    def _rank(self, ctx: PlacementContext, replica_id: str, feasible: list[NodeState]) -> list[tuple[str, float, dict[str, float]]]:
        """Return every candidate with its total and per-plugin scores, best first, in the order `_pick` uses."""
        details: list[dict[str, float]] = [{} for _ in feasible]
        totals, weight_sum = self._totals(ctx, feasible, details)
        ranked = []
        for node, total, detail in zip(feasible, totals, details):
            tie_break = zlib.crc32(f"{replica_id}/{node.node_id}".encode())
            ranked.append((node.node_id, round(total / weight_sum, 4), detail, tie_break))
        ranked.sort(key=lambda item: (-item[1], item[3]))
        return [(node_id, total, detail) for node_id, total, detail, _ in ranked]

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
        for offset in range(total):
            node = nodes[(start + offset) % total]
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
        ranked = self._score(ctx, replica_id, feasible, keep_details=explain)
        feasible_count = len(feasible) if examined == total else len(feasible) + (total - examined)
        return Decision(ranked[0][0], total, feasible_count if explain else len(feasible), reasons, ranked if explain else [])

    def _score(
        self, ctx: PlacementContext, replica_id: str, feasible: list[NodeState], *, keep_details: bool
    ) -> list[tuple[str, float, dict[str, float]]]:
        plugins = active_scores(ctx)
        totals = [0.0] * len(feasible)
        details: list[dict[str, float]] = [{} for _ in feasible] if keep_details else []
        for name, plugin, weight in plugins:
            raw = [plugin(ctx, node) for node in feasible]
            low, high = min(raw), max(raw)
            if high == low:
                continue
            scale = 100.0 / (high - low)
            for index, value in enumerate(raw):
                normalised = (value - low) * scale
                totals[index] += weight * normalised
                if keep_details:
                    details[index][name] = round(normalised, 2)

        weight_sum = sum(weight for _, _, weight in plugins) or 1.0
        ranked = []
        for index, node in enumerate(feasible):
            tie_break = zlib.crc32(f"{replica_id}/{node.node_id}".encode())
            ranked.append((node.node_id, round(totals[index] / weight_sum, 4), details[index] if keep_details else {}, tie_break))
        ranked.sort(key=lambda item: (-item[1], item[3]))
        return [(node_id, total, detail) for node_id, total, detail, _ in ranked]

"""The scheduler's view of the cluster: nodes, desired specs, bindings and resource accounting.

A replica's resources are reserved on its node from the moment the
scheduler binds it, before the agent reports anything, so a burst of
decisions never counts the same free memory twice. A replica that is
handing over (`previous_node` set) holds resources on both nodes until the
old copy is stopped.
"""

from __future__ import annotations

from collections import Counter

from continuum.services.scheduler.model import AutoscaleTarget, Binding, NodeState, WorkloadBindings
from continuum.services.scheduler.registry import NodeRegistry
from continuum.shared.schemas import WorkloadSpec


class Cluster:
    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        self.specs: dict[str, WorkloadSpec] = {}
        self.bindings: dict[str, WorkloadBindings] = {}
        self.targets: dict[str, AutoscaleTarget] = {}
        # workload -> Counter of ("node"|"zone"|"site", value) -> bound replicas there.
        self.placed: dict[str, Counter[tuple[str, str]]] = {}

    @property
    def nodes(self) -> dict[str, NodeState]:
        return self.registry.nodes

    def node(self, node_id: str) -> NodeState:
        node = self.registry.nodes.get(node_id)
        if node is None:
            # A binding can name a node this process has not heard from yet (after a restart).
            node = self.registry._add(node_id)
            node.status = "suspect"
            node.last_seen = self.registry.clock()
        return node

    # Accounting -----------------------------------------------------------

    def reserve(self, workload: str, replica_id: str, node_id: str) -> None:
        node = self.node(node_id)
        if replica_id in node.replicas:
            return
        spec = self.specs.get(workload)
        if spec is not None:
            node.reserved_cpu += spec.resources.cpu_millis
            node.reserved_memory += spec.resources.memory_mb
            node.reserved_gpus += spec.resources.gpus
        node.replicas[replica_id] = workload
        counts = self.placed.setdefault(workload, Counter())
        counts[("node", node_id)] += 1
        counts[("zone", node.zone)] += 1
        counts[("site", node.site)] += 1

    def release(self, workload: str, replica_id: str, node_id: str) -> None:
        node = self.registry.nodes.get(node_id)
        if node is None or node.replicas.pop(replica_id, None) is None:
            return
        spec = self.specs.get(workload)
        if spec is not None:
            node.reserved_cpu -= spec.resources.cpu_millis
            node.reserved_memory -= spec.resources.memory_mb
            node.reserved_gpus -= spec.resources.gpus
        counts = self.placed.get(workload)
        if counts is not None:
            for key in (("node", node_id), ("zone", node.zone), ("site", node.site)):
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
        self.registry.version += 1

    def reserve_binding(self, workload: str, binding: Binding) -> None:
        self.reserve(workload, binding.replica_id, binding.node_id)
        if binding.previous_node:
            self.reserve(workload, f"{binding.replica_id}@old", binding.previous_node)

    def release_binding(self, workload: str, binding: Binding) -> None:
        self.release(workload, binding.replica_id, binding.node_id)
        if binding.previous_node:
            self.release(workload, f"{binding.replica_id}@old", binding.previous_node)

    def rebuild_reservations(self) -> None:
        """Recompute every reservation from the bindings (after a restart, a takeover or a spec change)."""
        for node in self.registry.nodes.values():
            node.reserved_cpu = node.reserved_memory = node.reserved_gpus = 0
            node.replicas.clear()
        self.placed.clear()
        for workload, bound in self.bindings.items():
            for binding in bound.replicas.values():
                self.reserve_binding(workload, binding)
        self.registry.version += 1

    def count(self, workload: str, key: str, value: str) -> int:
        counts = self.placed.get(workload)
        return counts.get((key, value), 0) if counts else 0

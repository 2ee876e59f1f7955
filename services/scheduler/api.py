"""Management API endpoints under `ctm.api.*`, served by every scheduler process.

Writes (deploy, delete, scale, cordon, drain, autoscale) go to key-value
buckets, so any process can take them and the leader acts on the change;
reads come from the process's own view, which followers keep current from
the same buckets and streams.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from continuum.services.scheduler.model import AutoscaleTarget, NodeAdmin, NodeState
from continuum.services.scheduler.validation import desired_ceiling, desired_floor, spec_problems
from continuum.shared import subjects
from continuum.shared.rpc import ApiFailure, Endpoint
from continuum.shared.schemas import EmptyRequest, NameRequest, OkReply, Resources, ScaleRequest, WorkloadSpec, encode
from continuum.shared.schemas.scheduler_api import (
    AutoscaleReply,
    CandidateScore,
    DeployReply,
    DeployRequest,
    ExplainReply,
    ExplainRequest,
    NodeActionRequest,
    NodeList,
    NodeView,
    ReplicaView,
    ScaleWorkloadRequest,
    WorkloadList,
    WorkloadSummary,
    WorkloadView,
)

if TYPE_CHECKING:
    from continuum.services.scheduler.service import SchedulerService


class SchedulerApi:
    def __init__(self, service: SchedulerService) -> None:
        self.service = service

    def endpoints(self) -> list[Endpoint]:
        def endpoint(name: str, request: type, handler, description: str) -> Endpoint:  # type: ignore[no-untyped-def]
            return Endpoint(name=name, subject=subjects.api(name), request=request, handler=handler, description=description)

        return [
            endpoint("deploy", DeployRequest, self.deploy, "Create or update a workload from its spec."),
            endpoint("delete", NameRequest, self.delete, "Delete a workload and stop its replicas."),
            endpoint("scale", ScaleWorkloadRequest, self.scale, "Set a workload's fixed replica count."),
            endpoint("get", NameRequest, self.get, "Describe one workload and its replicas."),
            endpoint("workloads", EmptyRequest, self.list_workloads, "List workloads."),
            endpoint("nodes", EmptyRequest, self.list_nodes, "List nodes."),
            endpoint("node", NameRequest, self.get_node, "Describe one node."),
            endpoint("cordon", NodeActionRequest, self.cordon, "Stop placing new replicas on a node."),
            endpoint("uncordon", NodeActionRequest, self.uncordon, "Allow placements on a node again."),
            endpoint("drain", NodeActionRequest, self.drain, "Cordon a node and move its replicas elsewhere."),
            endpoint("explain", ExplainRequest, self.explain, "Explain where a workload fits and why."),
            endpoint("autoscale", ScaleRequest, self.autoscale, "Agents ask for more replicas of a busy function."),
        ]

    # Workloads --------------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> DeployReply:
        spec = request.spec
        problems = spec_problems(spec)
        if problems:
            raise ApiFailure(
                "invalid_spec",
                f"invalid workload spec {spec.name!r}: {len(problems)} problem(s)",
                field=problems[0].split(":", 1)[0],
                details=problems,
            )
        created = await self.service.store.put_spec(spec)
        return DeployReply(name=spec.name, created=created, desired_replicas=desired_floor(spec))

    async def delete(self, request: NameRequest) -> OkReply:
        await self._require_spec(request.name)
        await self.service.store.delete_spec(request.name)
        return OkReply(message=f"workload {request.name} deleted; its replicas are being stopped")

    async def scale(self, request: ScaleWorkloadRequest) -> OkReply:
        spec = await self._require_spec(request.name)
        if not 0 <= request.replicas <= 10_000:
            raise ApiFailure("bad_request", f"replicas {request.replicas} is outside 0..10000", field="replicas")
        updated = WorkloadSpec(**{**_fields(spec), "replicas": request.replicas, "min_replicas": None, "max_replicas": None})
        await self.service.store.put_spec(updated)
        return OkReply(message=f"workload {request.name} scaled to {request.replicas} replicas")

    async def get(self, request: NameRequest) -> WorkloadView:
        spec = await self._require_spec(request.name)
        return self._workload_view(spec)

    async def list_workloads(self, request: EmptyRequest) -> WorkloadList:
        summaries = []
        cluster = self.service.cluster
        for name in sorted(cluster.specs):
            view = self._workload_view(cluster.specs[name])
            summaries.append(
                WorkloadSummary(
                    name=name,
                    runtime=view.spec.runtime,
                    desired_replicas=view.desired_replicas,
                    bound_replicas=len(view.replicas),
                    running_replicas=sum(1 for replica in view.replicas if replica.state in ("running", "idle")),
                    unschedulable=view.unschedulable,
                    failed_replicas=sum(1 for replica in view.replicas if replica.error),
                    last_error=next((replica.error for replica in view.replicas if replica.error), ""),
                )
            )
        return WorkloadList(workloads=summaries)

    def _workload_view(self, spec: WorkloadSpec) -> WorkloadView:
        bound = self.service.cluster.bindings.get(spec.name)
        replicas = []
        if bound is not None:
            for binding in sorted(bound.replicas.values(), key=lambda item: _index(item.replica_id)):
                replicas.append(
                    ReplicaView(
                        replica_id=binding.replica_id,
                        node_id=binding.node_id,
                        state=binding.state,
                        epoch=binding.epoch,
                        generation=binding.generation,
                        previous_node=binding.previous_node,
                        failures=binding.failures,
                        reason=binding.reason,
                        error=binding.error,
                    )
                )
        retry = self.service.reconciler.retry.get(spec.name)
        return WorkloadView(
            name=spec.name,
            spec=spec,
            desired_replicas=self.service.reconciler.desired(spec),
            replicas=replicas,
            unschedulable=retry.message if retry else "",
        )

    async def _require_spec(self, name: str) -> WorkloadSpec:
        spec = self.service.cluster.specs.get(name) or await self.service.store.get_spec(name)
        if spec is None:
            raise ApiFailure("not_found", f"workload {name!r} not found; list them with `continuum get workloads`", field="name")
        return spec

    # Nodes --------------------------------------------------------------------

    async def list_nodes(self, request: EmptyRequest) -> NodeList:
        nodes = self.service.cluster.nodes
        return NodeList(nodes=[self._node_view(nodes[node_id]) for node_id in sorted(nodes)])

    async def get_node(self, request: NameRequest) -> NodeView:
        return self._node_view(self._require_node(request.name))

    async def cordon(self, request: NodeActionRequest) -> OkReply:
        self._require_node(request.name)
        await self.service.store.put_admin(request.name, NodeAdmin(cordoned=True, reason=request.reason))
        return OkReply(message=f"node {request.name} cordoned")

    async def uncordon(self, request: NodeActionRequest) -> OkReply:
        self._require_node(request.name)
        await self.service.store.put_admin(request.name, NodeAdmin(reason=request.reason))
        return OkReply(message=f"node {request.name} uncordoned")

    async def drain(self, request: NodeActionRequest) -> OkReply:
        node = self._require_node(request.name)
        await self.service.store.put_admin(request.name, NodeAdmin(cordoned=True, draining=True, reason=request.reason))
        return OkReply(message=f"node {request.name} draining; {len(node.replicas)} replica(s) will move")

    def _require_node(self, name: str) -> NodeState:
        node = self.service.cluster.nodes.get(name)
        if node is None:
            raise ApiFailure("not_found", f"node {name!r} not found; list them with `continuum get nodes`", field="name")
        return node

    def _node_view(self, node: NodeState) -> NodeView:
        now = self.service.registry.clock()
        return NodeView(
            node_id=node.node_id,
            status=node.status,  # type: ignore[arg-type]
            cordoned=node.cordoned,
            draining=node.draining,
            cordon_reason=node.cordon_reason,
            zone=node.zone,
            site=node.site,
            labels=node.labels,
            taints=node.taints,
            runtimes=sorted(node.runtimes),
            gpu_models=list(node.gpu_models),
            allocatable=Resources(cpu_millis=node.cpu_millis, memory_mb=node.memory_mb, gpus=node.gpus),
            reserved=Resources(cpu_millis=node.reserved_cpu, memory_mb=node.reserved_memory, gpus=node.reserved_gpus),
            rtt_ms={f"{kind}:{target}": value for (kind, target), value in sorted(node.rtt.items())},
            replicas=sorted(node.replicas),
            seconds_since_report=round(now - node.last_seen, 3) if node.last_seen else None,
            boot_id=node.boot_id,
            seq=node.seq,
        )

    # Placement ----------------------------------------------------------------

    async def explain(self, request: ExplainRequest) -> ExplainReply:
        if request.spec is not None:
            spec = request.spec
            problems = spec_problems(spec)
            if problems:
                raise ApiFailure("invalid_spec", f"invalid workload spec {spec.name!r}", field=problems[0].split(":", 1)[0], details=problems)
        elif request.name:
            spec = await self._require_spec(request.name)
        else:
            raise ApiFailure("bad_request", "set name (a deployed workload) or spec", field="name")

        decision = self.service.engine.decide(spec, f"{spec.name}-explain", explain=True)
        candidates = [CandidateScore(node_id=node_id, total=total, scores=scores) for node_id, total, scores in decision.scores[:10]]
        return ExplainReply(
            workload=spec.name,
            total_nodes=decision.total_nodes,
            feasible_nodes=decision.feasible,
            message=decision.message,
            reasons=dict(decision.reasons),
            candidates=candidates,
        )

    async def autoscale(self, request: ScaleRequest) -> AutoscaleReply:
        spec = await self._require_spec(request.workload)
        current = self.service.reconciler.desired(spec)
        ceiling = desired_ceiling(spec)
        if spec.replicas is not None or current >= ceiling:
            return AutoscaleReply(workload=spec.name, desired_replicas=current, changed=False)
        wanted = min(ceiling, current + max(1, math.ceil(request.pending_invocations / spec.concurrency)))
        target = AutoscaleTarget(target=wanted, at=time.time())
        await self.service.store.scheduler.put(f"autoscale.{spec.name}", encode(target))
        return AutoscaleReply(workload=spec.name, desired_replicas=wanted, changed=True)


def _fields(spec: WorkloadSpec) -> dict[str, object]:
    return {name: getattr(spec, name) for name in spec.__struct_fields__}


def _index(replica_id: str) -> int:
    tail = replica_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0

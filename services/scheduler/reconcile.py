"""The reconcile loop: desired specs against bindings and observed state, run by the leader only.

Each pass, per workload in priority order: finish handovers, re-place
replicas of lost nodes (at once), failed replicas (after crash-loop
backoff), replicas on draining nodes and latency violators (new copy
first, old copy stopped when the new one runs), then add or remove
replicas to reach the desired count. The workload's bindings are written
to the key-value bucket before its placement events are published, and
events use deterministic message ids, so a retry or a new leader's
re-announcement is stored once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from continuum.services.scheduler.cluster import Cluster
from continuum.services.scheduler.engine import Decision, PlacementEngine
from continuum.services.scheduler.model import Binding, WorkloadBindings
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.services.scheduler.validation import desired_ceiling, desired_floor
from continuum.shared.schemas import Placement, WorkloadSpec

logger = logging.getLogger(__name__)

SETTLED_STATES = frozenset({"running", "idle"})


@dataclass
class RetryState:
    """Backoff of an unschedulable workload: retried after `not_before` once the cluster changed."""

    version: int
    not_before: float
    backoff: float
    message: str


class Reconciler:
    def __init__(
        self,
        cluster: Cluster,
        engine: PlacementEngine,
        settings: SchedulerSettings,
        *,
        next_generation: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cluster = cluster
        self.engine = engine
        self.settings = settings
        self.next_generation = next_generation
        self.clock = clock
        self.epoch = 0
        self.retry: dict[str, RetryState] = {}
        # Unschedulable workloads found in the last pass: name -> decision.
        self.failures: dict[str, tuple[Decision, int]] = {}

    def plan(self) -> tuple[list[WorkloadBindings], list[str], list[Placement]]:
        """Run one pass in memory; return changed bindings, workloads to forget, and events to publish."""
        changed: list[WorkloadBindings] = []
        events: list[Placement] = []
        specs = sorted(self.cluster.specs.values(), key=lambda spec: (-spec.priority, spec.name))
        self.failures = {}
        for spec in specs:
            bound = self.cluster.bindings.setdefault(spec.name, WorkloadBindings(workload=spec.name))
            before = len(events)
            dirty = self._reconcile_workload(spec, bound, events)
            if dirty or len(events) > before:
                changed.append(bound)

        removed = []
        for name in [name for name in self.cluster.bindings if name not in self.cluster.specs]:
            bound = self.cluster.bindings.pop(name)
            for binding in bound.replicas.values():
                events.extend(self._stop_all(name, binding, "workload deleted"))
                self.cluster.release_binding(name, binding)
            self.retry.pop(name, None)
            removed.append(name)
        return changed, removed, events

    def _reconcile_workload(self, spec: WorkloadSpec, bound: WorkloadBindings, events: list[Placement]) -> bool:
        dirty = False
        now = self.clock()
        for binding in list(bound.replicas.values()):
            dirty |= self._finish_handover(spec, binding, events)
            dirty |= self._repair(spec, binding, now, events)
        dirty |= self._scale(spec, bound, events)
        return dirty

    # Replica repair -------------------------------------------------------

    def _finish_handover(self, spec: WorkloadSpec, binding: Binding, events: list[Placement]) -> bool:
        old = binding.previous_node
        if old is None:
            return False
        old_node = self.cluster.nodes.get(old)
        timed_out = self.clock() - binding.moved_at >= self.settings.handover_timeout_s
        old_dead = old_node is None or old_node.status in ("lost", "gone")
        if binding.state not in SETTLED_STATES and not timed_out and not old_dead:
            return False
        self.cluster.release(spec.name, f"{binding.replica_id}@old", old)
        binding.previous_node = None
        events.append(self._event("stop", old, spec, binding.replica_id, self.next_generation(), "handover finished"))
        return True

    def _repair(self, spec: WorkloadSpec, binding: Binding, now: float, events: list[Placement]) -> bool:
        node = self.cluster.nodes.get(binding.node_id)
        if node is None:
            return False
        if node.status in ("lost", "gone"):
            return self._move(spec, binding, events, reason=f"node {node.node_id} {node.status}", handover=False)
        if binding.state == "failed":
            if binding.retry_at == 0.0:
                delay = binding.crash_backoff(
                    time.time(),
                    initial=self.settings.crash_backoff_initial_s,
                    maximum=self.settings.crash_backoff_max_s,
                    reset_after=self.settings.crash_reset_after_s,
                )
                binding.retry_at = now + delay
                logger.warning(
                    "replica %s failed on %s (%d failures): %s; re-placing in %.1fs",
                    binding.replica_id, binding.node_id, binding.failures, binding.error or "no reason given", delay,
                )
                return True
            # `retry_at` is on this process's monotonic clock; one written by another process
            # (bindings loaded after a takeover) could lie far ahead, so cap the wait.
            binding.retry_at = min(binding.retry_at, now + self.settings.crash_backoff_max_s)
            if now < binding.retry_at:
                return False
            reason = f"replica failed: {binding.error}" if binding.error else "replica failed"
            return self._move(spec, binding, events, reason=reason, handover=False, avoid_current=True)
        if binding.previous_node is not None:
            return False
        if node.draining:
            return self._move(spec, binding, events, reason=f"node {node.node_id} draining", handover=True)
        if spec.latency is not None and self._violates_latency(spec, binding, now):
            return self._move(spec, binding, events, reason=f"latency to {spec.latency.target} above {spec.latency.max_rtt_ms:g} ms", handover=True)
        return False

    def _violates_latency(self, spec: WorkloadSpec, binding: Binding, now: float) -> bool:
        constraint = spec.latency
        assert constraint is not None
        node = self.cluster.nodes[binding.node_id]
        key = (constraint.kind, constraint.target)
        rtt = node.rtt_to(constraint.kind, constraint.target)
        if rtt is not None and rtt <= constraint.max_rtt_ms:
            node.rtt_violations.pop(key, None)
            return False
        since = node.rtt_violations.setdefault(key, now)
        if now - since < self.settings.rtt_violation_s:
            return False
        return binding.moved_at == 0.0 or now - binding.moved_at >= self.settings.move_cooldown_s

    def _move(
        self, spec: WorkloadSpec, binding: Binding, events: list[Placement], *, reason: str, handover: bool, avoid_current: bool = False
    ) -> bool:
        old = binding.node_id
        exclude = frozenset({old}) if (handover or avoid_current) else frozenset()
        self.cluster.release(spec.name, binding.replica_id, old)
        decision = self.engine.decide(spec, binding.replica_id, exclude=exclude)
        if decision.node_id is None and avoid_current:
            decision = self.engine.decide(spec, binding.replica_id)
        if decision.node_id is None:
            self.cluster.reserve(spec.name, binding.replica_id, old)
            if not handover:
                self._record_failure(spec, decision, 1)
            return False

        if handover:
            binding.previous_node = old
            self.cluster.reserve(spec.name, f"{binding.replica_id}@old", old)
        else:
            events.append(self._event("stop", old, spec, binding.replica_id, self.next_generation(), reason))
        # The start takes its own generation, newer than the stop's: when the replica is placed on
        # the same node again, the agent must see the start as newer than the stop it just applied.
        generation = self.next_generation()
        binding.node_id = decision.node_id
        binding.epoch = self.epoch
        binding.generation = generation
        binding.state = "pending"
        binding.retry_at = 0.0
        binding.moved_at = self.clock()
        binding.reason = reason
        self.cluster.reserve(spec.name, binding.replica_id, decision.node_id)
        events.append(self._event("start", decision.node_id, spec, binding.replica_id, generation, reason))
        logger.info("moving replica %s from %s to %s: %s", binding.replica_id, old, decision.node_id, reason)
        return True

    def retry_failed_now(self, bound: WorkloadBindings) -> int:
        """Re-place every failed replica of a redeployed workload on the next pass, and restart its backoff."""
        count = 0
        for binding in bound.replicas.values():
            if binding.state == "failed":
                binding.failures = 0
                binding.retry_at = self.clock()
                count += 1
        return count

    # Scaling --------------------------------------------------------------

    def desired(self, spec: WorkloadSpec) -> int:
        """Return the replica count to keep: fixed, or the autoscale target decayed toward the floor.

        The target drops by one replica per `scale_down_after_s` since the last
        scale request, so scaling down needs no write.
        """
        floor, ceiling = desired_floor(spec), desired_ceiling(spec)
        if spec.replicas is not None:
            return spec.replicas
        requested = self.cluster.targets.get(spec.name)
        if requested is None or floor >= ceiling:
            return floor
        decay = int(max(0.0, time.time() - requested.at) // self.settings.scale_down_after_s)
        return max(floor, min(requested.target - decay, ceiling))

    def _scale(self, spec: WorkloadSpec, bound: WorkloadBindings, events: list[Placement]) -> bool:
        desired = self.desired(spec)
        dirty = False
        wanted = {f"{spec.name}-{index}" for index in range(desired)}
        for replica_id in [rid for rid in bound.replicas if rid not in wanted]:
            binding = bound.replicas.pop(replica_id)
            events.extend(self._stop_all(spec.name, binding, "scaled down"))
            self.cluster.release_binding(spec.name, binding)
            dirty = True

        missing = [f"{spec.name}-{index}" for index in range(desired) if f"{spec.name}-{index}" not in bound.replicas]
        if not missing or not self._may_attempt(spec.name):
            return dirty
        for position, replica_id in enumerate(missing):
            decision = self.engine.decide(spec, replica_id)
            if decision.node_id is None:
                self._record_failure(spec, decision, len(missing) - position)
                break
            generation = self.next_generation()
            binding = Binding(replica_id=replica_id, node_id=decision.node_id, epoch=self.epoch, generation=generation)
            bound.replicas[replica_id] = binding
            self.cluster.reserve(spec.name, replica_id, decision.node_id)
            events.append(self._event("start", decision.node_id, spec, replica_id, generation, "scheduled"))
            dirty = True
        else:
            self.retry.pop(spec.name, None)
        return dirty

    def _may_attempt(self, workload: str) -> bool:
        state = self.retry.get(workload)
        if state is None:
            return True
        now = self.clock()
        if now < state.not_before:
            return False
        # Retry when the cluster changed, or at the longest backoff in case a change went unnoticed.
        return state.version != self.cluster.registry.version or now >= state.not_before + self.settings.retry_backoff_max_s

    def _record_failure(self, spec: WorkloadSpec, decision: Decision, pending: int) -> None:
        previous = self.retry.get(spec.name)
        backoff = self.settings.retry_backoff_initial_s if previous is None else min(previous.backoff * 2, self.settings.retry_backoff_max_s)
        self.retry[spec.name] = RetryState(self.cluster.registry.version, self.clock() + backoff, backoff, decision.message)
        self.failures[spec.name] = (decision, pending)
        logger.warning("workload %s unschedulable (%d pending): %s; retry in %.1fs", spec.name, pending, decision.message, backoff)

    # Events -----------------------------------------------------------------

    def _stop_all(self, workload: str, binding: Binding, reason: str) -> list[Placement]:
        generation = self.next_generation()
        stops = [self._event("stop", binding.node_id, None, binding.replica_id, generation, reason, workload=workload)]
        if binding.previous_node:
            stops.append(self._event("stop", binding.previous_node, None, binding.replica_id, generation, reason, workload=workload))
        return stops

    def _event(
        self, action: str, node_id: str, spec: WorkloadSpec | None, replica_id: str, generation: int, reason: str, *, workload: str | None = None
    ) -> Placement:
        return Placement(
            action=action,  # type: ignore[arg-type]
            node_id=node_id,
            workload=workload or (spec.name if spec else ""),
            replica_id=replica_id,
            epoch=self.epoch,
            generation=generation,
            spec=spec if action == "start" else None,
            reason=reason,
        )


def placement_event_id(event: Placement) -> str:
    """Return the deterministic `Nats-Msg-Id` of a placement event."""
    return f"placement-{event.node_id}-{event.replica_id}-{event.action}-e{event.epoch}-g{event.generation}"

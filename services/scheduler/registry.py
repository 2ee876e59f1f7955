"""Node registry: applies telemetry and lifecycle events and tracks liveness.

Ordering rule: a report is applied only when it is newer than the last one
applied for its node. Within one agent process (`boot_id`) that means a
higher `seq`; a report from another boot is applied only when its `sent_at`
is not older than the last applied report. So a replayed or late burst of
old reports never overwrites newer state and never counts as a heartbeat.

Liveness runs on this process's monotonic clock, never on the agents'
clocks: ready, then suspect after `suspect_after_intervals` heartbeat
intervals without a report, then lost after `lost_after_intervals`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from continuum.services.scheduler.model import NodeAdmin, NodeSnapshot, NodeState
from continuum.services.scheduler.settings import SchedulerSettings
from continuum.shared.schemas import NodeLifecycle, Telemetry

logger = logging.getLogger(__name__)

COLLECTIONS_LABEL = "continuum.io/collections"
BUCKETS_LABEL = "continuum.io/buckets"

# Callback for liveness transitions: (node, old status, new status).
TransitionHandler = Callable[[NodeState, str, str], None]


class NodeRegistry:
    def __init__(self, settings: SchedulerSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.nodes: dict[str, NodeState] = {}
        self.admin: dict[str, NodeAdmin] = {}
        self.dropped_stale = 0
        self.applied = 0
        # Bumped on every change that can make an unschedulable workload fit.
        self.version = 0
        self.observing_since = clock()
        self.on_transition: list[TransitionHandler] = []

    # Telemetry ----------------------------------------------------------

    def apply_telemetry(self, report: Telemetry) -> bool:
        """Apply one report; return False when it was dropped as stale."""
        node = self.nodes.get(report.node_id)
        sent_at = report.sent_at.timestamp()
        if node is None:
            node = self._add(report.node_id)
        elif not self._is_newer(node, report.boot_id, report.seq, sent_at):
            self.dropped_stale += 1
            return False

        structural = (
            node.boot_id != report.boot_id
            or node.cpu_millis != report.allocatable.cpu_millis
            or node.memory_mb != report.allocatable.memory_mb
            or node.gpus != report.allocatable.gpus
            or node.labels != report.labels
        )
        node.boot_id = report.boot_id
        node.seq = report.seq
        node.sent_at = sent_at
        node.interval_s = report.interval_s if report.interval_s > 0 else 1.0
        node.zone = report.zone
        node.site = report.site
        node.labels = report.labels
        node.taints = report.taints
        node.hard_taints = tuple(taint for taint in report.taints if taint.effect != "PreferNoSchedule")
        node.soft_taints = tuple(taint for taint in report.taints if taint.effect == "PreferNoSchedule")
        node.runtimes = frozenset(report.runtimes)
        node.gpu_models = tuple(gpu.model for gpu in report.gpus)
        node.cpu_millis = report.allocatable.cpu_millis
        node.memory_mb = report.allocatable.memory_mb
        node.gpus = report.allocatable.gpus
        node.rtt = {(sample.kind, sample.target): sample.rtt_ms for sample in report.rtt}
        node.nats_rtt_ms = _nats_rtt(node.rtt)
        node.collections = _label_set(report.labels, COLLECTIONS_LABEL)
        node.buckets = _label_set(report.labels, BUCKETS_LABEL)
        node.last_seen = self.clock()
        if report.draining:
            if node.drain_boot is None:
                self._set_agent_drain(node, report.boot_id, "agent reports draining")
                structural = True
        elif node.drain_boot is not None and node.drain_boot != report.boot_id:
            self._clear_agent_drain(node, report.boot_id)
            structural = True
        if node.status != "ready":
            self._transition(node, "ready")
        elif structural:
            self.version += 1
        self.applied += 1
        return True

    @staticmethod
    def _is_newer(node: NodeState, boot_id: str, seq: int, sent_at: float) -> bool:
        if boot_id == node.boot_id:
            return seq > node.seq
        return sent_at >= node.sent_at

    def _add(self, node_id: str) -> NodeState:
        node = NodeState(node_id)
        admin = self.admin.get(node_id)
        if admin is not None:
            node.cordoned = admin.cordoned
            node.admin_draining = admin.draining
            node.cordon_reason = admin.reason
            node.update_draining()
        self.nodes[node_id] = node
        self.version += 1
        logger.info("node %s joined", node_id, extra={"node_id": node_id})
        return node

    # Lifecycle ------------------------------------------------------------

    def apply_lifecycle(self, event: NodeLifecycle) -> None:
        """Apply hello, drain or bye; an event from an older boot of the node changes nothing.

        The lifecycle stream is replayed last-per-subject at start, so a new
        scheduler can receive the `drain` or `bye` of an agent process that
        has since restarted. Such an event is older when its `boot_id` is not
        the boot of the newest applied report, or when it was sent before that
        report. A `hello` from a newer boot clears the drain of the old one.
        """
        node = self.nodes.get(event.node_id)
        if event.event == "hello":
            if node is None:
                node = self._add(event.node_id)
                node.last_seen = self.clock()
            elif event.boot_id != node.boot_id and event.at.timestamp() < node.sent_at:
                logger.info("ignoring hello of node %s from boot %s, sent before its newest report", node.node_id, event.boot_id)
                return
            node.zone = event.zone or node.zone
            node.site = event.site or node.site
            if event.boot_id and node.drain_boot is not None and event.boot_id != node.drain_boot:
                self._clear_agent_drain(node, event.boot_id)
                self.version += 1
            return
        if node is None:
            return
        if self._from_older_boot(node, event):
            logger.info(
                "ignoring %s of node %s from boot %s: older than the newest report (boot %s)",
                event.event, node.node_id, event.boot_id or "(unknown)", node.boot_id,
                extra={"node_id": node.node_id},
            )
            return
        if event.event == "drain":
            if node.drain_boot is None:
                self._set_agent_drain(node, event.boot_id or node.boot_id, event.reason or "agent request")
                self.version += 1
        elif event.event == "bye":
            self._transition(node, "gone")

    @staticmethod
    def _from_older_boot(node: NodeState, event: NodeLifecycle) -> bool:
        if node.sent_at and event.at.timestamp() < node.sent_at:
            return True
        return bool(event.boot_id and node.boot_id and event.boot_id != node.boot_id)

    @staticmethod
    def _set_agent_drain(node: NodeState, boot_id: str, reason: str) -> None:
        node.drain_boot = boot_id
        node.update_draining()
        logger.info("node %s is draining: %s (boot %s)", node.node_id, reason, boot_id, extra={"node_id": node.node_id})

    @staticmethod
    def _clear_agent_drain(node: NodeState, boot_id: str) -> None:
        logger.info(
            "node %s restarted as boot %s, so the drain requested by boot %s no longer applies",
            node.node_id, boot_id, node.drain_boot, extra={"node_id": node.node_id},
        )
        node.drain_boot = None
        node.update_draining()

    # Operator state ---------------------------------------------------------

    def apply_admin(self, node_id: str, admin: NodeAdmin | None) -> None:
        admin = admin or NodeAdmin()
        self.admin[node_id] = admin
        node = self.nodes.get(node_id)
        if node is None:
            return
        node.cordoned = admin.cordoned
        node.admin_draining = admin.draining
        node.cordon_reason = admin.reason
        node.update_draining()
        self.version += 1

    # Snapshots ----------------------------------------------------------------

    def restore(self, snapshot: NodeSnapshot) -> None:
        """Seed a node from its `ctm-nodes` snapshot so older replayed reports are dropped."""
        node = self.nodes.get(snapshot.node_id)
        if node is not None and node.seq >= 0:
            return
        node = node or self._add(snapshot.node_id)
        node.boot_id = snapshot.boot_id
        node.seq = snapshot.seq
        node.sent_at = snapshot.sent_at
        node.last_seen = self.clock()
        if snapshot.status in ("lost", "gone"):
            node.status = snapshot.status

    def snapshot(self, node: NodeState) -> NodeSnapshot:
        return NodeSnapshot(node_id=node.node_id, boot_id=node.boot_id, seq=node.seq, status=node.status, sent_at=node.sent_at)

    # Liveness -------------------------------------------------------------------

    def check_liveness(self) -> float | None:
        """Move nodes to suspect or lost; nothing is lost before the startup grace has passed.

        Return the clock time of the next possible transition (None when no node can change),
        so the caller can check again exactly then instead of one reconcile interval later.
        """
        now = self.clock()
        settings = self.settings
        next_change: float | None = None
        for node in self.nodes.values():
            if node.status in ("lost", "gone"):
                continue
            lost_at = max(node.last_seen, self.observing_since) + settings.lost_after_intervals * node.interval_s
            suspect_at = node.last_seen + settings.suspect_after_intervals * node.interval_s
            if now >= lost_at:
                self._transition(node, "lost")
                continue
            if now >= suspect_at and node.status == "ready":
                self._transition(node, "suspect")
            change_at = lost_at if node.status == "suspect" else min(suspect_at, lost_at)
            if next_change is None or change_at < next_change:
                next_change = change_at
        return next_change

    def _transition(self, node: NodeState, status: str) -> None:
        old = node.status
        if old == status:
            return
        node.status = status
        self.version += 1
        log = logger.warning if status in ("suspect", "lost") else logger.info
        log("node %s: %s -> %s", node.node_id, old, status, extra={"node_id": node.node_id})
        for handler in self.on_transition:
            handler(node, old, status)


def _nats_rtt(rtt: dict[tuple[str, str], float]) -> float | None:
    """Return the RTT to the NATS server the agent reports, else the lowest RTT to any NATS target."""
    direct = rtt.get(("nats", "nats"))
    if direct is not None:
        return direct
    return min((value for (kind, _), value in rtt.items() if kind == "nats"), default=None)


def _label_set(labels: dict[str, str], key: str) -> frozenset[str]:
    value = labels.get(key, "")
    return frozenset(item.strip() for item in value.split(",") if item.strip())

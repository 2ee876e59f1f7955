"""Service wiring: subscriptions, key-value watchers, the lease, the reconcile loop and the API.

Every process keeps a full view (telemetry and lifecycle replayed from the
last report per node, specs and bindings from their buckets), so a
follower that wins the lease acts within one reconcile pass. Only the
leader writes bindings and publishes placement events.
"""

from __future__ import annotations

import asyncio
import time
import contextlib
import logging

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api as js_api

from continuum.services.scheduler.api import SchedulerApi
from continuum.services.scheduler.cluster import Cluster
from continuum.services.scheduler.engine import PlacementEngine
from continuum.services.scheduler.errors import LeadershipLostError
from continuum.services.scheduler.lease import LeaderLease
from continuum.services.scheduler.model import AutoscaleTarget, NodeAdmin, NodeState, WorkloadBindings
from continuum.services.scheduler.reconcile import Reconciler, placement_event_id
from continuum.services.scheduler.registry import NodeRegistry
from continuum.services.scheduler.settings import SchedulerSettings, load_scheduler_settings
from continuum.services.scheduler.store import Store
from continuum.shared import bus, subjects
from continuum.shared.errors import ContinuumError, SchemaError
from continuum.shared.rpc import start_service
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import NodeLifecycle, PlacementFailed, Telemetry, WorkloadSpec, WorkloadStatus, decode

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
PUBLISH_BATCH = 256
# Added to a liveness deadline before waking, in seconds, so the check runs just after it, not just before.
LIVENESS_SLACK_S = 0.002


class SchedulerService:
    def __init__(self, settings: SchedulerSettings | None = None) -> None:
        self._settings = settings
        self.leading = False

    async def start(self, context: ServiceContext) -> None:
        self.context = context
        self.settings = self._settings or load_scheduler_settings(context.config_path)
        self.registry = NodeRegistry(self.settings)
        self.cluster = Cluster(self.registry)
        self.engine = PlacementEngine(self.cluster, self.settings)
        self.reconciler = Reconciler(self.cluster, self.engine, self.settings, next_generation=self._next_generation)
        self.store = Store(context.js)
        await self.store.open()
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._generation = 0
        self._generation_limit = -1
        self._dirty: set[str] = set()
        self._snapshots: dict[str, NodeState] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscriptions = []
        self.registry.on_transition.append(self._handle_transition)

        for snapshot in await self.store.load_snapshots():
            self.registry.restore(snapshot)
        self.cluster.bindings = await self.store.load_bindings()

        js = context.js
        for subject, handler in ((subjects.ALL_TELEMETRY, self._handle_telemetry), (subjects.ALL_LIFECYCLE, self._handle_lifecycle)):
            # A fresh config per subscription: nats-py writes the filter subject into the
            # object it is given, and the ordered consumer reuses it when it recreates itself.
            config = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.LAST_PER_SUBJECT)
            self._subscriptions.append(
                await js.subscribe(subject, cb=handler, ordered_consumer=True, config=config, pending_msgs_limit=200_000)
            )
        new_only = js_api.ConsumerConfig(deliver_policy=js_api.DeliverPolicy.NEW)
        self._subscriptions.append(
            await js.subscribe(subjects.ALL_WORKLOAD_STATUS, cb=self._handle_status, ordered_consumer=True, config=new_only)
        )
        await self._start_watcher(self.store.workloads, self._handle_spec_entry)
        await self._start_watcher(self.store.nodes, self._handle_node_entry)
        await self._start_watcher(self.store.bindings, self._handle_binding_entry)
        await self._start_watcher(self.store.scheduler, self._handle_scheduler_entry)
        self.cluster.rebuild_reservations()

        self.api = SchedulerApi(self)
        self.micro = await start_service(
            context.nc, name="scheduler", version=VERSION, description="Continuum scheduler management API", endpoints=self.api.endpoints()
        )
        self.lease = LeaderLease(
            self.store.scheduler, context.instance_id, self.settings.lease_ttl_s, on_elected=self._handle_elected, on_lost=self._handle_lost
        )
        self._tasks.append(asyncio.create_task(self.lease.run(self._stop), name="scheduler-lease"))
        self._tasks.append(asyncio.create_task(self._reconcile_loop(), name="scheduler-reconcile"))
        logger.info("scheduler %s started (%d nodes, %d workloads known)", context.instance_id, len(self.registry.nodes), len(self.cluster.specs))

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(task, 5.0)
        await self.lease.release()
        with contextlib.suppress(Exception):
            await self.micro.stop()
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
        logger.info("scheduler %s stopped", self.context.instance_id)

    # Leadership -------------------------------------------------------------

    async def _handle_elected(self, epoch: int) -> None:
        self.reconciler.epoch = epoch
        self._generation_limit = -1
        await self._top_up_generations()
        self.cluster.bindings = await self.store.load_bindings()
        self.cluster.rebuild_reservations()
        self.registry.observing_since = min(self.registry.observing_since, self.registry.clock())
        self.leading = True
        await self._reannounce()
        self._wake.set()

    async def _handle_lost(self) -> None:
        self.leading = False

    async def _reannounce(self) -> None:
        """Publish every binding's start again with its original ids, in case the old leader crashed before publishing."""
        events = []
        for name, bound in self.cluster.bindings.items():
            spec = self.cluster.specs.get(name)
            if spec is None:
                continue
            for binding in bound.replicas.values():
                event = self.reconciler._event("start", binding.node_id, spec, binding.replica_id, binding.generation, "re-announced by new leader")
                event.epoch = binding.epoch
                events.append(event)
        await self._publish_events(events)
        logger.info("re-announced %d bindings as leader of epoch %d", len(events), self.reconciler.epoch)

    def _next_generation(self) -> int:
        self._generation += 1
        return self._generation

    async def _top_up_generations(self) -> None:
        block = self.settings.generation_block
        while self._generation_limit - self._generation < block // 2:
            start = await self.store.reserve_generations(block)
            if start > self._generation:
                self._generation = start - 1
                self._generation_limit = start + block - 1

    # Reconcile ------------------------------------------------------------------

    async def _reconcile_loop(self) -> None:
        next_change: float | None = None
        while not self._stop.is_set():
            timeout = self.settings.reconcile_interval_s
            if next_change is not None:
                # Wake when the next node can turn suspect or lost, so a dead node's replicas
                # are re-placed without waiting for the rest of the interval.
                timeout = min(timeout, max(0.0, next_change - self.registry.clock()) + LIVENESS_SLACK_S)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                next_change = self.registry.check_liveness()
                if self.leading and self.lease.valid:
                    await self._reconcile_pass()
            except LeadershipLostError as exc:
                logger.warning("stepping down: %s", exc)
                self.leading = False
                self.lease.leading = False
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one failed pass must not end the loop
                logger.error("reconcile pass failed; retrying next interval", exc_info=True)
                await asyncio.sleep(self.settings.reconcile_interval_s)

    async def reconcile_now(self) -> None:
        """Run one pass at once (used by tests and the benchmark)."""
        if self.leading:
            await self._reconcile_pass()

    async def _reconcile_pass(self) -> None:
        await self._top_up_generations()
        changed, removed, events = self.reconciler.plan()
        names = {bound.workload for bound in changed} | self._dirty
        self._dirty = set()
        for name in names:
            bound = self.cluster.bindings.get(name)
            if bound is not None:
                await self.store.save_bindings(bound)
        for name in removed:
            await self.store.delete_bindings(name)
        await self._publish_events(events)
        for name, (decision, pending) in self.reconciler.failures.items():
            await self._publish_failure(name, decision, pending)
        for node_id, node in list(self._snapshots.items()):
            await self.store.put_snapshot(self.registry.snapshot(node))
            self._snapshots.pop(node_id, None)

    async def _publish_events(self, events: list) -> None:  # type: ignore[type-arg]
        source = self.context.source
        for start in range(0, len(events), PUBLISH_BATCH):
            batch = events[start : start + PUBLISH_BATCH]
            results = await asyncio.gather(
                *(
                    bus.publish(self.context.js, subjects.placement(event.node_id), event, source=source, event_id=placement_event_id(event))
                    for event in batch
                ),
                return_exceptions=True,
            )
            for event, result in zip(batch, results):
                if isinstance(result, BaseException):
                    # The binding is stored, so the next leader's re-announcement or a restart republishes it.
                    logger.error("placement %s for %s on %s not published: %s", event.action, event.replica_id, event.node_id, result)

    async def _publish_failure(self, name: str, decision, pending: int) -> None:  # type: ignore[no-untyped-def]
        failed = PlacementFailed(
            workload=name,
            message=decision.message,
            total_nodes=decision.total_nodes,
            reasons=dict(decision.reasons),
            replicas_pending=pending,
            epoch=self.reconciler.epoch,
        )
        try:
            await bus.publish(self.context.js, subjects.PLACEMENT_FAILED, failed, source=self.context.source)
        except ContinuumError as exc:
            logger.warning("placement failure of %s not published: %s", name, exc)

    # Incoming events --------------------------------------------------------------

    async def _handle_telemetry(self, msg: Msg) -> None:
        try:
            report = decode(msg.data, Telemetry)
            subjects.validate_node_id(report.node_id)
        except (SchemaError, ContinuumError) as exc:
            await self._dead_letter(msg, "TELEMETRY", exc)
            return
        self.registry.apply_telemetry(report)

    async def _handle_lifecycle(self, msg: Msg) -> None:
        try:
            event = decode(msg.data, NodeLifecycle)
            subjects.validate_node_id(event.node_id)
        except (SchemaError, ContinuumError) as exc:
            await self._dead_letter(msg, "NODES", exc)
            return
        self.registry.apply_lifecycle(event)
        self._wake.set()

    async def _handle_status(self, msg: Msg) -> None:
        try:
            status = decode(msg.data, WorkloadStatus)
        except SchemaError as exc:
            await self._dead_letter(msg, "WORKLOAD_STATUS", exc)
            return
        bound = self.cluster.bindings.get(status.workload)
        binding = bound.replicas.get(status.replica_id) if bound else None
        if binding is None or status.node_id != binding.node_id:
            return
        if status.generation and (status.epoch, status.generation) < (binding.epoch, binding.generation):
            return
        if binding.state == status.state:
            return
        binding.state = status.state
        binding.reason = status.reason
        if status.state == "failed":
            binding.error = status.reason
        elif status.state == "running":
            binding.error = ""
            if not binding.running_since:
                binding.running_since = time.time()
        self._dirty.add(status.workload)
        self._wake.set()

    async def _dead_letter(self, msg: Msg, stream: str, exc: Exception) -> None:
        logger.warning("undecodable message on %s sent to the dead-letter subject: %s", msg.subject, exc)
        try:
            await bus.send_to_dlq(self.context.js, msg, stream=stream, consumer="scheduler", error=exc, service="scheduler")
        except ContinuumError as dlq_exc:
            logger.error("dead-letter publish failed: %s", dlq_exc)

    def _handle_transition(self, node: NodeState, old: str, new: str) -> None:
        self._snapshots[node.node_id] = node
        if new in ("lost", "gone", "ready"):
            self._wake.set()

    # Key-value watchers ---------------------------------------------------------------

    async def _start_watcher(self, kv, handler) -> None:  # type: ignore[no-untyped-def]
        watcher = await kv.watchall()

        async def run() -> None:
            while not self._stop.is_set():
                try:
                    entry = await watcher.updates(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                except asyncio.CancelledError:
                    raise
                if entry is None:
                    continue
                try:
                    handler(entry.key, None if entry.operation in ("DEL", "PURGE") else entry.value)
                except (SchemaError, ValueError) as exc:
                    logger.warning("ignoring invalid value of key %s: %s", entry.key, exc)
            with contextlib.suppress(Exception):
                await watcher.stop()

        self._tasks.append(asyncio.create_task(run(), name=f"watch-{kv._name}"))

    def _handle_spec_entry(self, key: str, value: bytes | None) -> None:
        old = self.cluster.specs.get(key)
        if value is None:
            self.cluster.specs.pop(key, None)
        else:
            spec = decode(value, WorkloadSpec)
            self.cluster.specs[key] = spec
            self.reconciler.retry.pop(key, None)
            bound = self.cluster.bindings.get(key)
            if old is not None and bound is not None:
                retried = self.reconciler.retry_failed_now(bound)
                if retried:
                    logger.info("workload %s redeployed: re-placing %d failed replica(s) now", key, retried)
            if old is not None and old.resources != spec.resources:
                self.cluster.rebuild_reservations()
            elif old is None:
                for binding in self.cluster.bindings.get(key, WorkloadBindings(workload=key)).replicas.values():
                    self.cluster.release_binding(key, binding)
                    self.cluster.reserve_binding(key, binding)
        self._wake.set()

    def _handle_node_entry(self, key: str, value: bytes | None) -> None:
        if key.startswith("admin."):
            node_id = key.removeprefix("admin.")
            self.registry.apply_admin(node_id, decode(value, NodeAdmin) if value else None)
            self._wake.set()

    def _handle_binding_entry(self, key: str, value: bytes | None) -> None:
        if self.leading:
            return
        old = self.cluster.bindings.pop(key, None)
        if old is not None:
            for binding in old.replicas.values():
                self.cluster.release_binding(key, binding)
        if value is not None:
            bound = decode(value, WorkloadBindings)
            self.cluster.bindings[key] = bound
            for binding in bound.replicas.values():
                self.cluster.reserve_binding(key, binding)

    def _handle_scheduler_entry(self, key: str, value: bytes | None) -> None:
        if not key.startswith("autoscale."):
            return
        name = key.removeprefix("autoscale.")
        if value is None:
            self.cluster.targets.pop(name, None)
        else:
            self.cluster.targets[name] = decode(value, AutoscaleTarget)
        self._wake.set()



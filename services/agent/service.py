"""The agent service: wiring of placements, replicas, status reports, telemetry and lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import nats.errors
import psutil

from continuum.services.agent import telemetry
from continuum.services.agent.artifacts import ArtifactCache
from continuum.services.agent.config import AgentSettings, load_agent_settings, resolve_node_id
from continuum.services.agent.errors import ArtifactError, RuntimeUnavailable
from continuum.services.agent.network import PeerProber, nats_rtt, serve_ping
from continuum.services.agent.placements import (
    durable_spec,
    parse_placement,
    read_desired_state,
    replica_identity,
)
from continuum.services.agent.pyruntime import PythonFunction
from continuum.services.agent.replica import Replica, Runtime
from continuum.services.agent.wasm import WasmEngine, WasmFunction
from continuum.shared import __version__, bus, subjects
from continuum.shared.bus import DurableConsumer
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import PermanentError, PublishError, SchemaError
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import decode, encode
from continuum.shared.schemas.telemetry import NodeLifecycle, Telemetry
from continuum.shared.schemas.workload import Placement, ReplicaState, ScaleRequest, WorkloadSpec, WorkloadStatus

logger = logging.getLogger(__name__)

WORKLOADS_BUCKET = "ctm-workloads"
AUTOSCALE_SUBJECT = subjects.api("autoscale")


class AgentService:
    """The edge agent of one node, run by `run_service("agent", ...)`."""

    def __init__(self, overrides: dict[str, Any] | None = None) -> None:
        self.overrides = overrides or {}
        self.replicas: dict[str, Replica] = {}
        self.versions: dict[str, tuple[int, int]] = {}
        self.draining = False
        self.seq = 0
        self.boot_id = uuid.uuid4().hex
        self._status_queue: asyncio.Queue[WorkloadStatus | None] = asyncio.Queue()
        self._status_count = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_scale_request: dict[str, float] = {}

    # Start ------------------------------------------------------------------

    async def start(self, context: ServiceContext) -> None:
        self.context = context
        self.nc, self.js = context.nc, context.js
        self.settings: AgentSettings = load_agent_settings(context.config_path, context.settings.state_dir, self.overrides)
        Path(self.settings.state_dir or ".").mkdir(parents=True, exist_ok=True)
        self.node_id = resolve_node_id(self.settings)
        self.artifacts = ArtifactCache(self.js, self.settings)
        self.wasm = WasmEngine()
        self.gpus = telemetry.GpuProbe()
        self.runtimes = list(telemetry.SUPPORTED_RUNTIMES)
        engine = telemetry.container_engine()
        if engine:
            # NOTE: container execution is not implemented; the engine is only detected and logged.
            logger.info("container engine found at %s; the container runtime is not implemented in this agent", engine)
        psutil.cpu_percent(interval=None)

        self._status_publisher = asyncio.create_task(self._publish_statuses())
        self._ping = await serve_ping(self.nc, self.node_id, self.boot_id)
        self.peers = PeerProber(self.nc, self.settings.peers, self.settings.ping_timeout_s)
        await self._publish_lifecycle("hello")

        desired = await read_desired_state(self.js, self.node_id)
        for placement in desired.values():
            await self.apply(placement)

        self.consumer = DurableConsumer(
            self.js, durable_spec(self.node_id), dict, self._handle_placement, service="agent", concurrency=1
        )
        self._consumer_task = asyncio.create_task(self.consumer.run())
        self._telemetry_task = asyncio.create_task(self._report_telemetry())
        logger.info(
            "agent %s ready (zone %r, site %r, runtimes %s)", self.node_id, self.settings.zone, self.settings.site, self.runtimes
        )

    # Placements -------------------------------------------------------------

    async def _handle_placement(self, event: CloudEvent[dict[str, Any]], msg: Any) -> None:
        payload = event.data
        try:
            placement = parse_placement(payload)
        except SchemaError as exc:
            identity = replica_identity(payload)
            if identity is not None:
                self._report_raw(identity[0], identity[1], "failed", f"invalid placement: {exc}")
            raise PermanentError(f"invalid placement: {exc}") from exc
        if placement.node_id != self.node_id:
            raise PermanentError(
                f"placement for node {placement.node_id!r} arrived on the subject of node {self.node_id!r}"
            )
        await self.apply(placement)

    async def apply(self, placement: Placement) -> None:
        """Apply one placement idempotently; events not newer than the applied version are ignored."""
        version = (placement.epoch, placement.generation)
        applied = self.versions.get(placement.replica_id)
        if applied is not None and version <= applied:
            logger.info(
                "ignoring %s of replica %s at version %s: version %s is already applied",
                placement.action,
                placement.replica_id,
                version,
                applied,
            )
            return
        self.versions[placement.replica_id] = version

        if placement.action == "stop":
            self._stop_replica(placement)
            return
        await self._start_replica(placement)

    def _stop_replica(self, placement: Placement) -> None:
        replica = self.replicas.get(placement.replica_id)
        if replica is None or not replica.active:
            logger.info("stop of replica %s: not running on this node", placement.replica_id)
            self.replicas.pop(placement.replica_id, None)
            return
        replica.placement = placement
        self._spawn(self._stop_and_forget(replica, placement.reason or "stopped by placement"))

    async def _stop_and_forget(self, replica: Replica, reason: str) -> None:
        await replica.stop(reason)
        if self.replicas.get(replica.replica_id) is replica:
            del self.replicas[replica.replica_id]

    async def _start_replica(self, placement: Placement) -> None:
        existing = self.replicas.get(placement.replica_id)
        if existing is not None and existing.active and existing.placement.action == "stop":
            # The same replica id was stopped (a delete, then a new deploy) and is still
            # finishing its invocations: let that stop complete, then start afresh.
            await self._wait_until_forgotten(existing)
            existing = self.replicas.get(placement.replica_id)
        if existing is not None and existing.active:
            existing.placement = placement
            logger.info("replica %s is already %s; start is a no-op", placement.replica_id, existing.state)
            return

        spec, problem = await self._resolve_spec(placement)
        if spec is None:
            self._report_raw(placement.workload, placement.replica_id, "failed", problem, placement)
            return

        replica = Replica(
            placement,
            spec,
            nc=self.nc,
            prepare=self._prepare_runtime,
            report=self._report,
            on_pressure=self._request_scale,
            max_queued=self.settings.max_queued_invocations,
        )
        self.replicas[placement.replica_id] = replica
        self._spawn(replica.start())

    async def _wait_until_forgotten(self, replica: Replica, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.replicas.get(replica.replica_id) is replica:
            if asyncio.get_running_loop().time() > deadline:
                logger.warning("replica %s still stopping after %.0fs; starting it again anyway", replica.replica_id, timeout)
                self.replicas.pop(replica.replica_id, None)
                return
            await asyncio.sleep(0.05)

    async def _resolve_spec(self, placement: Placement) -> tuple[WorkloadSpec | None, str]:
        spec = placement.spec
        if spec is None:
            spec = await self._read_spec(placement.workload)
            if spec is None:
                return None, f"the placement has no spec and {WORKLOADS_BUCKET} has no key {placement.workload!r}"
        if spec.name != placement.workload:
            return None, f"the spec is named {spec.name!r} but the placement is for workload {placement.workload!r}"
        if spec.runtime not in self.runtimes:
            return None, (
                f"runtime {spec.runtime!r} is not available on node {self.node_id} (available: {', '.join(self.runtimes)})"
            )
        return spec, ""

    async def _read_spec(self, workload: str) -> WorkloadSpec | None:
        try:
            bucket = await self.js.key_value(WORKLOADS_BUCKET)
            entry = await bucket.get(workload)
        except Exception as exc:  # noqa: BLE001 - a missing bucket or key means no spec
            logger.warning("no spec for %s in %s: %s", workload, WORKLOADS_BUCKET, type(exc).__name__)
            return None
        try:
            return decode(entry.value or b"", WorkloadSpec)
        except SchemaError as exc:
            logger.warning("invalid spec for %s in %s: %s", workload, WORKLOADS_BUCKET, exc)
            return None

    async def _prepare_runtime(self, spec: WorkloadSpec) -> Runtime:
        """Fetch the artifact of `spec` and build its runtime (not started yet)."""
        artifact = await self.artifacts.fetch(spec)
        if spec.runtime == "wasm":
            if artifact.kind != "wasm":
                raise ArtifactError(f"artifact {spec.artifact!r} is {artifact.kind}, not a WASM module", artifact=spec.artifact)
            return WasmFunction(
                self.wasm, artifact.blob, spec.entrypoint, fuel=self.settings.wasm_fuel, memory_mb=self.settings.wasm_memory_mb
            )
        if spec.runtime != "function":
            raise RuntimeUnavailable(f"runtime {spec.runtime!r} is not available on node {self.node_id}")
        if artifact.kind == "wasm":
            raise ArtifactError(f"artifact {spec.artifact!r} is a WASM module; set runtime: wasm", artifact=spec.artifact)

        entrypoint = spec.entrypoint or "main:handler"
        module, _, function = entrypoint.partition(":")
        if not module.isidentifier() or not (function or "handler").isidentifier():
            raise ArtifactError(f"invalid entrypoint {entrypoint!r}: expected module:function", artifact=spec.artifact)
        if artifact.kind == "python":
            source = artifact.directory / f"{module}.py"
            if not source.exists():
                source.write_bytes(artifact.blob.read_bytes())
        return PythonFunction(
            artifact.directory,
            entrypoint,
            concurrency=spec.concurrency,
            env=spec.env,
            start_timeout=self.settings.worker_start_timeout_s,
        )

    # Status reports ---------------------------------------------------------

    def _report(self, replica: Replica, state: ReplicaState, reason: str, cold_start_ms: float | None) -> None:
        self._report_raw(replica.workload, replica.replica_id, state, reason, replica.placement, cold_start_ms)

    def _report_raw(
        self,
        workload: str,
        replica_id: str,
        state: ReplicaState,
        reason: str,
        placement: Placement | None = None,
        cold_start_ms: float | None = None,
    ) -> None:
        status = WorkloadStatus(
            workload=workload,
            replica_id=replica_id,
            node_id=self.node_id,
            state=state,
            epoch=placement.epoch if placement else 0,
            generation=placement.generation if placement else 0,
            cold_start_ms=cold_start_ms,
            reason=reason,
        )
        self._status_queue.put_nowait(status)

    async def _publish_statuses(self) -> None:
        """Publish queued status changes in order, so a slow PubAck never delays an invocation."""
        while True:
            status = await self._status_queue.get()
            if status is None:
                return
            self._status_count += 1
            try:
                await bus.publish(
                    self.js,
                    subjects.workload_status(status.workload),
                    status,
                    source=self.context.source,
                    event_id=f"{self.node_id}-{self.boot_id}-status-{self._status_count}",
                )
            except PublishError as exc:
                logger.warning("status %s of replica %s not published: %s", status.state, status.replica_id, exc)

    # Autoscale --------------------------------------------------------------

    def _request_scale(self, replica: Replica, pending: int) -> None:
        now = time.monotonic()
        if now - self._last_scale_request.get(replica.workload, -1e9) < self.settings.autoscale_interval_s:
            return
        self._last_scale_request[replica.workload] = now
        request = ScaleRequest(workload=replica.workload, node_id=self.node_id, pending_invocations=pending)
        self._spawn(self._send_scale_request(request))

    async def _send_scale_request(self, request: ScaleRequest) -> None:
        try:
            await self.nc.request(AUTOSCALE_SUBJECT, encode(request), timeout=0.5)
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as exc:
            logger.warning(
                "scale request for %s (%d pending) got no answer on %s: %s",
                request.workload,
                request.pending_invocations,
                AUTOSCALE_SUBJECT,
                type(exc).__name__,
            )
            return
        logger.info("asked the scheduler for more replicas of %s", request.workload)

    # Telemetry --------------------------------------------------------------

    async def _report_telemetry(self) -> None:
        interval = self.settings.telemetry_interval_s
        while True:
            started = time.monotonic()
            try:
                await self.publish_telemetry()
            except PublishError as exc:
                logger.warning("telemetry %d not published: %s", self.seq, exc)
            except Exception:  # noqa: BLE001 - a failed report must not end the loop
                logger.error("telemetry %d failed", self.seq, exc_info=True)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    def build_telemetry(self, rtt: list[Any]) -> Telemetry:
        cpu = telemetry.cpu_stats()
        memory = telemetry.memory_stats()
        gpus = self.gpus.read()
        capacity = telemetry.capacity(cpu, memory, gpus)
        active = [replica for replica in self.replicas.values() if replica.active]
        requests = [
            telemetry.Resources(
                cpu_millis=r.spec.resources.cpu_millis, memory_mb=r.spec.resources.memory_mb, gpus=r.spec.resources.gpus
            )
            for r in active
        ]
        self.seq += 1
        return Telemetry(
            node_id=self.node_id,
            seq=self.seq,
            boot_id=self.boot_id,
            interval_s=self.settings.telemetry_interval_s,
            zone=self.settings.zone,
            site=self.settings.site,
            labels=self.settings.labels,
            taints=self.settings.taints,
            cpu=cpu,
            memory=memory,
            disk=telemetry.disk_stats(self.settings.state_dir or "."),
            gpus=gpus,
            rtt=rtt,
            runtimes=self.runtimes,
            capacity=capacity,
            allocatable=telemetry.allocatable(capacity, self.settings.reserved, requests),
            replicas=telemetry.summarize((r.workload, r.state) for r in self.replicas.values()),
            draining=self.draining,
        )

    async def publish_telemetry(self) -> None:
        server = self.nc.connected_url.netloc if self.nc.connected_url else "nats"
        rtt = [sample for sample in [await nats_rtt(self.nc, server)] if sample is not None]
        rtt += await self.peers.measure()
        report = self.build_telemetry(rtt)
        await bus.publish(
            self.js,
            subjects.telemetry(self.node_id),
            report,
            source=self.context.source,
            event_id=f"{self.node_id}-{self.boot_id}-telemetry-{report.seq}",
        )

    # Lifecycle and stop -----------------------------------------------------

    async def _publish_lifecycle(self, event: str, reason: str = "") -> None:
        message = NodeLifecycle(
            node_id=self.node_id,
            event=event,  # type: ignore[arg-type]
            boot_id=self.boot_id,
            zone=self.settings.zone,
            site=self.settings.site,
            labels=self.settings.labels,
            agent_version=__version__,
            reason=reason,
        )
        try:
            await bus.publish(
                self.js,
                subjects.node_lifecycle(self.node_id),
                message,
                source=self.context.source,
                event_id=f"{self.node_id}-{self.boot_id}-{event}",
            )
        except PublishError as exc:
            logger.warning("lifecycle event %s not published: %s", event, exc)
            return
        logger.info("published %s for node %s", event, self.node_id)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Drain: take no new placements, finish in-flight invocations, stop every replica, say bye."""
        self.draining = True
        await self._publish_lifecycle("drain", "agent stopping")
        await self.consumer.stop()
        self._consumer_task.cancel()
        self._telemetry_task.cancel()

        await asyncio.gather(
            *(replica.stop("agent stopping") for replica in list(self.replicas.values())), return_exceptions=True
        )
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5.0)
        self._status_queue.put_nowait(None)
        try:
            await asyncio.wait_for(self._status_publisher, 5.0)
        except asyncio.TimeoutError:
            logger.warning("%d replica status events were not published before stop", self._status_queue.qsize())

        await self._ping.unsubscribe()
        self.wasm.stop()
        self.gpus.close()
        await self._publish_lifecycle("bye", "agent stopped")

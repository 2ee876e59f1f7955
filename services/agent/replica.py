"""One replica of a workload on this node: its state, runtime and invocation subscription.

States follow `ReplicaState`: pending, pulling, starting, running, idle
(scaled to zero), failed and stopped. Invocations arrive on `ctm.fn.<name>`
in the queue group `ctm.fn.<name>`, shared with the replicas on every node.
An idle replica keeps that subscription, so the next invocation is held
(bounded by `max_queued`) while the runtime starts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from continuum.services.agent.errors import AgentError, InvocationFailure
from continuum.shared import subjects
from continuum.shared.schemas import encode
from continuum.shared.schemas.invoke import InvokeError, InvokeReply
from continuum.shared.schemas.workload import Placement, ReplicaState, WorkloadSpec

logger = logging.getLogger(__name__)

ACTIVE_STATES = frozenset({"pending", "pulling", "starting", "running", "idle"})


class Runtime(Protocol):
    async def start(self) -> None: ...

    async def invoke(self, payload: bytes, timeout: float) -> bytes: ...

    async def stop(self) -> None: ...


# (replica, new state, reason, cold start in ms)
StatusCallback = Callable[["Replica", ReplicaState, str, float | None], None]
PrepareRuntime = Callable[[WorkloadSpec], Awaitable[Runtime]]
PressureCallback = Callable[["Replica", int], None]


class Replica:
    """A replica: starts its runtime, serves invocations, scales to zero and stops."""

    def __init__(
        self,
        placement: Placement,
        spec: WorkloadSpec,
        *,
        nc: NATS,
        prepare: PrepareRuntime,
        report: StatusCallback,
        on_pressure: PressureCallback,
        max_queued: int,
    ) -> None:
        self.placement = placement
        self.spec = spec
        self.replica_id = placement.replica_id
        self.workload = spec.name
        self.nc = nc
        self.prepare = prepare
        self.report = report
        self.on_pressure = on_pressure
        self.max_queued = max_queued
        self.state: ReplicaState = "pending"
        self.runtime: Runtime | None = None
        self.received_at = time.perf_counter()
        self._runtime_active = False
        self._pending = 0
        self._slots = asyncio.Semaphore(max(1, spec.concurrency))
        self._lifecycle = asyncio.Lock()
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle_watcher: asyncio.Task[None] | None = None
        self._last_activity = time.monotonic()
        self._set_state("pending")

    @property
    def version(self) -> tuple[int, int]:
        return (self.placement.epoch, self.placement.generation)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def _set_state(self, state: ReplicaState, reason: str = "", cold_start_ms: float | None = None) -> None:
        self.state = state
        self.report(self, state, reason, cold_start_ms)

    # Start and stop ---------------------------------------------------------

    async def start(self) -> None:
        """Fetch the artifact, start the runtime and subscribe; a failure leaves the replica `failed`."""
        try:
            self._set_state("pulling")
            self.runtime = await self.prepare(self.spec)
            self._set_state("starting")
            await self.runtime.start()
            self._runtime_active = True
            self._subscription = await self.nc.subscribe(
                subjects.function(self.workload), queue=subjects.function(self.workload), cb=self._handle_invocation
            )
        except AgentError as exc:
            await self._fail(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any start failure marks the replica failed, the agent goes on
            logger.error("replica %s failed to start", self.replica_id, exc_info=True)
            await self._fail(f"internal error while starting: {type(exc).__name__}")
            return

        self._last_activity = time.monotonic()
        self._set_state("running", cold_start_ms=(time.perf_counter() - self.received_at) * 1000.0)
        if self.spec.idle_timeout_s:
            self._idle_watcher = asyncio.create_task(self._watch_idle(self.spec.idle_timeout_s))

    async def _fail(self, reason: str) -> None:
        logger.warning("replica %s of %s failed: %s", self.replica_id, self.workload, reason)
        await self._release()
        self._set_state("failed", reason)

    async def stop(self, reason: str, timeout: float = 10.0) -> None:
        """Unsubscribe, let in-flight invocations finish within `timeout` seconds, then stop the runtime."""
        if not self.active:
            return
        await self._release(timeout)
        self._set_state("stopped", reason)

    async def _release(self, timeout: float = 10.0) -> None:
        if self._idle_watcher is not None:
            self._idle_watcher.cancel()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be closing
                logger.debug("unsubscribe failed for replica %s", self.replica_id, exc_info=True)
            self._subscription = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                logger.warning("cancelling an invocation of %s still running after %.0fs", self.workload, timeout)
                task.cancel()
        if self.runtime is not None:
            await self.runtime.stop()
        self._runtime_active = False

    # Scale to zero ----------------------------------------------------------

    async def _watch_idle(self, idle_timeout: float) -> None:
        try:
            await self._scale_to_zero_when_idle(idle_timeout)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - logged; the replica keeps serving warm
            logger.error("idle watcher of replica %s failed; it will not scale to zero", self.replica_id, exc_info=True)

    async def _scale_to_zero_when_idle(self, idle_timeout: float) -> None:
        while True:
            remaining = self._last_activity + idle_timeout - time.monotonic()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._pending or not self._runtime_active:
                await asyncio.sleep(idle_timeout)
                continue
            async with self._lifecycle:
                if self._pending or not self._runtime_active:
                    continue
                assert self.runtime is not None
                await self.runtime.stop()
                self._runtime_active = False
            logger.info("replica %s of %s idle for %gs; stopped its runtime", self.replica_id, self.workload, idle_timeout)
            self._set_state("idle", f"no invocation for {idle_timeout:g}s")
            await asyncio.sleep(idle_timeout)

    async def _cold_start(self, held_since: float) -> float | None:
        """Start the runtime again after scale to zero; return the cold-start time in ms, or None when it was warm."""
        async with self._lifecycle:
            if self._runtime_active:
                return None
            assert self.runtime is not None
            self._set_state("starting", "invocation arrived while idle")
            await self.runtime.start()
            self._runtime_active = True
        cold_start_ms = (time.perf_counter() - held_since) * 1000.0
        self._set_state("running", cold_start_ms=cold_start_ms)
        return cold_start_ms

    # Invocations ------------------------------------------------------------

    async def _handle_invocation(self, msg: Msg) -> None:
        if self._pending >= self._slots_total + self.max_queued:
            self.on_pressure(self, self._pending)
            await self._respond(msg, self._error_reply("overloaded", f"{self.workload} is at its limit of queued invocations; retry later"))
            return
        if self._pending >= self._slots_total:
            self.on_pressure(self, self._pending + 1)
        # Counted here, not in the task, so that a burst delivered before any task runs is still bounded.
        self._pending += 1
        task = asyncio.create_task(self._serve(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _slots_total(self) -> int:
        return max(1, self.spec.concurrency)

    async def _serve(self, msg: Msg) -> None:
        arrived = time.perf_counter()
        try:
            async with self._slots:
                reply = await self._invoke(msg.data, arrived)
        finally:
            self._pending -= 1
            self._last_activity = time.monotonic()
        await self._respond(msg, reply)

    async def _invoke(self, payload: bytes, arrived: float) -> bytes:
        try:
            cold_start_ms = None if self._runtime_active else await self._cold_start(arrived)
        except AgentError as exc:
            await self._fail(f"cold start failed: {exc}")
            return self._error_reply("unavailable", f"{self.workload} could not be started; see its status")

        assert self.runtime is not None
        try:
            result = await self.runtime.invoke(payload, self.spec.timeout_s)
        except InvocationFailure as failure:
            return self._error_reply(failure.code, failure.message, failure.error_type, arrived, cold_start_ms)
        except Exception:  # noqa: BLE001 - logged with an id; the caller never sees agent internals
            error_id = uuid.uuid4().hex[:12]
            logger.error("invocation of %s failed (error id %s)", self.workload, error_id, exc_info=True)
            return self._error_reply("internal", f"internal error in the agent; error id {error_id}", "", arrived, cold_start_ms)

        reply = InvokeReply(
            ok=True,
            result=msgspec.Raw(result),
            replica_id=self.replica_id,
            node_id=self.placement.node_id,
            duration_ms=(time.perf_counter() - arrived) * 1000.0,
            cold_start_ms=cold_start_ms,
        )
        return encode(reply)

    def _error_reply(
        self,
        code: str,
        message: str,
        error_type: str = "",
        arrived: float | None = None,
        cold_start_ms: float | None = None,
    ) -> bytes:
        reply = InvokeReply(
            ok=False,
            error=InvokeError(code=code, message=message, error_type=error_type),  # type: ignore[arg-type]
            replica_id=self.replica_id,
            node_id=self.placement.node_id,
            duration_ms=(time.perf_counter() - arrived) * 1000.0 if arrived else 0.0,
            cold_start_ms=cold_start_ms,
        )
        return encode(reply)

    async def _respond(self, msg: Msg, data: bytes) -> None:
        if not msg.reply:
            return
        try:
            await msg.respond(data)
        except Exception:  # noqa: BLE001 - the caller may be gone; nothing else to do
            logger.warning("reply to an invocation of %s failed", self.workload, exc_info=True)

"""A live view of the platform, built only from what the bus shows.

Telemetry gives nodes (CPU, memory, GPUs, RTT to NATS), the scheduler's API
gives workloads and replicas, JetStream gives stream message counts, and a
core subscription to the event subjects gives the latest events.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass, field

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from rich.columns import Columns
from rich.console import Group
from rich.table import Table

from continuum.shared import subjects
from continuum.shared.errors import SchemaError
from continuum.shared.rpc import ApiCallError, call, discover_services
from continuum.shared.schemas import EmptyRequest, Telemetry, decode
from continuum.shared.schemas.scheduler_api import WorkloadList
from continuum.shared.topology import STREAMS

logger = logging.getLogger(__name__)

# Subjects whose events the view lists as they happen.
EVENT_SUBJECTS = (
    subjects.ALL_LIFECYCLE,
    subjects.ALL_PLACEMENTS,
    subjects.ALL_WORKLOAD_STATUS,
    subjects.ALL_INGEST_STATUS,
    "ctm.guard.blocked.*",
    subjects.ALL_HOOKS,
    subjects.ALL_DLQ,
)


# Streams whose newest events seed the view when it starts.
EVENT_STREAMS = ("NODES", "PLACEMENTS", "WORKLOAD_STATUS", "INGEST_STATUS", "DLQ")


@dataclass
class PlatformStatus:
    """Latest state seen on the bus; `refresh()` polls what is not pushed."""

    nc: NATS
    js: JetStreamContext
    nodes: dict[str, Telemetry] = field(default_factory=dict)
    node_seen_at: dict[str, float] = field(default_factory=dict)
    workloads: WorkloadList | None = None
    streams: dict[str, int] = field(default_factory=dict)
    services: dict[str, int] = field(default_factory=dict)
    events: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=8))
    _subscriptions: list = field(default_factory=list)

    async def start(self) -> None:
        await self._load_recent_events()
        self._subscriptions.append(await self.nc.subscribe(subjects.ALL_TELEMETRY, cb=self._handle_telemetry))
        for subject in EVENT_SUBJECTS:
            self._subscriptions.append(await self.nc.subscribe(subject, cb=self._handle_event))

    async def _load_recent_events(self, per_stream: int = 3) -> None:
        """Fill the event list with the newest stored events, so the view starts with history."""
        recent: list[tuple[float, str]] = []
        for stream in EVENT_STREAMS:
            try:
                last = (await self.js.stream_info(stream)).state.last_seq
            except Exception:  # noqa: BLE001 - a stream that is missing has no history to show
                continue
            for sequence in range(last, max(last - per_stream, 0), -1):
                try:
                    stored = await self.js.get_msg(stream, sequence)
                except Exception:  # noqa: BLE001 - a deleted message leaves a gap in the sequence
                    continue
                stamp = stored.time.timestamp() if stored.time else 0.0
                recent.append((stamp, self._event_line(stored.subject or "", stored.headers or {}, stored.data or b"", stamp)))
        for _, line in sorted(recent, reverse=True)[: self.events.maxlen]:
            self.events.append(line)

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            try:
                await subscription.unsubscribe()
            except nats.errors.ConnectionClosedError:
                pass

    async def _handle_telemetry(self, msg: Msg) -> None:
        try:
            report = decode(msg.data, Telemetry)
        except SchemaError as exc:
            logger.debug("ignored undecodable telemetry on %s: %s", msg.subject, exc)
            return
        self.nodes[report.node_id] = report
        self.node_seen_at[report.node_id] = time.monotonic()

    async def _handle_event(self, msg: Msg) -> None:
        self.events.appendleft(self._event_line(msg.subject, msg.headers or {}, msg.data, time.time()))

    @staticmethod
    def _event_line(subject: str, headers: dict[str, str], data: bytes, stamp: float) -> str:
        summary = data[:90].decode("utf-8", errors="replace")
        return f"{time.strftime('%H:%M:%S', time.localtime(stamp))} {subject} {headers.get('ce-type', '')} {summary}"

    async def refresh(self) -> None:
        try:
            self.workloads = await call(self.nc, subjects.api("workloads"), EmptyRequest(), WorkloadList, timeout=1.0)
        except ApiCallError as exc:
            logger.debug("workload list unavailable: %s", exc)
        for spec in STREAMS:
            try:
                info = await self.js.stream_info(spec.name)
                self.streams[spec.name] = info.state.messages
            except Exception:  # noqa: BLE001 - a missing stream shows as absent in the view
                self.streams.pop(spec.name, None)
        self.services = await discover_services(self.nc, timeout=0.3)

    def render(self) -> Group:
        return Group(self._nodes_table(), self._workloads_table(), self._streams_and_services(), self._events_table())

    def _nodes_table(self) -> Table:
        table = Table(title="nodes", header_style="bold", expand=True)
        for column in ("node", "zone", "cpu", "load", "memory", "gpus", "rtt to NATS", "replicas", "last report"):
            table.add_column(column)
        now = time.monotonic()
        for node_id, report in sorted(self.nodes.items()):
            memory_used = report.memory.total_bytes - report.memory.available_bytes
            gpus = ", ".join(f"{gpu.model} {gpu.utilization_pct:.0f}%" for gpu in report.gpus) or "none"
            nats_rtt = next((sample.rtt_ms for sample in report.rtt if sample.kind == "nats"), None)
            table.add_row(
                node_id,
                report.zone or "-",
                f"{report.cpu.utilization_pct:.0f}% of {report.cpu.cores}",
                " ".join(f"{value:.2f}" for value in report.cpu.load_avg[:3]),
                f"{memory_used / 2**30:.1f}/{report.memory.total_bytes / 2**30:.1f} GiB",
                gpus,
                f"{nats_rtt:.2f} ms" if nats_rtt is not None else "-",
                str(report.replicas.total),
                f"{now - self.node_seen_at[node_id]:.0f}s ago",
            )
        return table

    def _workloads_table(self) -> Table:
        table = Table(title="workloads", header_style="bold", expand=True)
        for column in ("workload", "runtime", "desired", "bound", "running", "failed", "problem"):
            table.add_column(column)
        for workload in self.workloads.workloads if self.workloads else []:
            table.add_row(
                workload.name,
                workload.runtime,
                str(workload.desired_replicas),
                str(workload.bound_replicas),
                str(workload.running_replicas),
                str(workload.failed_replicas),
                workload.unschedulable or workload.last_error,
            )
        return table

    def _streams_and_services(self) -> Columns:
        streams = Table(title="streams", header_style="bold")
        streams.add_column("stream")
        streams.add_column("messages", justify="right")
        for name, count in sorted(self.streams.items()):
            streams.add_row(name, str(count))

        services = Table(title="micro services", header_style="bold")
        services.add_column("service")
        services.add_column("instances", justify="right")
        for name, count in sorted(self.services.items()):
            services.add_row(name, str(count))
        return Columns([streams, services], padding=(0, 4))

    def _events_table(self) -> Table:
        table = Table(title="latest events", header_style="bold", expand=True, show_header=False)
        table.add_column("event", overflow="ellipsis", no_wrap=True)
        for line in self.events:
            table.add_row(line)
        return table


async def poll(status: PlatformStatus, stop: asyncio.Event, interval: float = 1.0) -> None:
    """Refresh `status` every `interval` seconds until `stop` is set."""
    while not stop.is_set():
        await status.refresh()
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass

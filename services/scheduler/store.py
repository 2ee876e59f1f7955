"""Key-value access: desired specs, bindings, node snapshots, operator state and the generation counter.

Bindings are written with compare-and-set on the key's revision, so a
scheduler that lost the lease without noticing cannot overwrite what the
new leader wrote; the write fails and the old leader steps down.
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from continuum.services.scheduler.errors import LeadershipLostError
from continuum.services.scheduler.model import NodeAdmin, NodeSnapshot, WorkloadBindings
from continuum.shared.schemas import WorkloadSpec, decode, encode

logger = logging.getLogger(__name__)

WORKLOADS_BUCKET = "ctm-workloads"
NODES_BUCKET = "ctm-nodes"
BINDINGS_BUCKET = "ctm-bindings"
SCHEDULER_BUCKET = "ctm-scheduler"
GENERATION_KEY = "generation"


class Store:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self.workloads: KeyValue
        self.nodes: KeyValue
        self.bindings: KeyValue
        self.scheduler: KeyValue
        # workload -> last revision of its bindings key seen or written by this process.
        self.binding_revisions: dict[str, int] = {}

    async def open(self) -> None:
        self.workloads = await self.js.key_value(WORKLOADS_BUCKET)
        self.nodes = await self.js.key_value(NODES_BUCKET)
        self.bindings = await self.js.key_value(BINDINGS_BUCKET)
        self.scheduler = await self.js.key_value(SCHEDULER_BUCKET)

    # Specs ----------------------------------------------------------------

    async def put_spec(self, spec: WorkloadSpec) -> bool:
        """Store a spec; return True when the workload is new."""
        created = await self.get_spec(spec.name) is None
        await self.workloads.put(spec.name, encode(spec))
        return created

    async def get_spec(self, name: str) -> WorkloadSpec | None:
        try:
            entry = await self.workloads.get(name)
        except nats.js.errors.KeyNotFoundError:
            return None
        return decode(entry.value or b"", WorkloadSpec)

    async def delete_spec(self, name: str) -> None:
        await self.workloads.delete(name)

    # Bindings ---------------------------------------------------------------

    async def load_bindings(self) -> dict[str, WorkloadBindings]:
        loaded: dict[str, WorkloadBindings] = {}
        try:
            keys = await self.bindings.keys()
        except nats.js.errors.NoKeysError:
            return loaded
        for key in keys:
            try:
                entry = await self.bindings.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            loaded[key] = decode(entry.value or b"", WorkloadBindings)
            self.binding_revisions[key] = entry.revision or 0
        return loaded

    async def save_bindings(self, bound: WorkloadBindings) -> None:
        last = self.binding_revisions.get(bound.workload, 0)
        try:
            if last:
                revision = await self.bindings.update(bound.workload, encode(bound), last=last)
            else:
                revision = await self.bindings.create(bound.workload, encode(bound))
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise LeadershipLostError(f"bindings of {bound.workload!r} changed under this scheduler") from exc
        self.binding_revisions[bound.workload] = revision

    async def delete_bindings(self, workload: str) -> None:
        await self.bindings.delete(workload)
        self.binding_revisions.pop(workload, None)

    # Nodes ------------------------------------------------------------------

    async def put_snapshot(self, snapshot: NodeSnapshot) -> None:
        await self.nodes.put(f"node.{snapshot.node_id}", encode(snapshot))

    async def load_snapshots(self) -> list[NodeSnapshot]:
        found = []
        try:
            keys = await self.nodes.keys()
        except nats.js.errors.NoKeysError:
            return found
        for key in keys:
            if not key.startswith("node."):
                continue
            try:
                entry = await self.nodes.get(key)
            except nats.js.errors.KeyNotFoundError:
                continue
            found.append(decode(entry.value or b"", NodeSnapshot))
        return found

    async def put_admin(self, node_id: str, admin: NodeAdmin) -> None:
        await self.nodes.put(f"admin.{node_id}", encode(admin))

    # Generations --------------------------------------------------------------

    async def reserve_generations(self, block: int) -> int:
        """Reserve `block` generations and return the first; compare-and-set so two leaders never share one."""
        while True:
            try:
                entry = await self.scheduler.get(GENERATION_KEY)
                current = int(entry.value or b"0")
                await self.scheduler.update(GENERATION_KEY, str(current + block).encode(), last=entry.revision)
                return current + 1
            except nats.js.errors.KeyNotFoundError:
                try:
                    await self.scheduler.create(GENERATION_KEY, str(block).encode())
                    return 1
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
            except nats.js.errors.KeyWrongLastSequenceError:
                continue

"""Batched, idempotent writes of chunk batches into collection tables.

Handlers of the `vectordb` durable consumer hand each ChunkBatch to
`BatchWriter.submit`, which buffers it per collection and returns only after
the commit that contains it, so the consumer acks a message only once its
rows are durable. A buffer is flushed when it reaches `batch_max_rows`
chunks or `batch_max_delay_s` after its first batch, because many small
commits fragment a table and conflict with each other.

A commit is one `merge_insert` keyed on chunk id, so a redelivered batch
updates its rows instead of adding duplicates, and it deletes the rows of
each document whose `doc_checksum` differs, so a changed document leaves no
stale chunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from nats.aio.msg import Msg

from continuum.services.vectordb.errors import BatchRejectedError, ModelMismatchError
from continuum.services.vectordb.locks import CollectionLocks
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.services.vectordb.store import Store
from continuum.shared import subjects
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import SubjectError
from continuum.shared.schemas import ChunkBatch

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    batch: ChunkBatch
    event_id: str
    future: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class WriterStats:
    batches_committed: int = 0
    rows_committed: int = 0
    commits: int = 0
    batches_skipped: int = 0
    batches_rejected: int = 0


def validate_batch(batch: ChunkBatch, subject: str | None) -> None:
    """Raise BatchRejectedError for a batch that no retry can store."""
    try:
        subjects.validate_name(batch.collection, kind="collection name")
    except SubjectError as exc:
        raise BatchRejectedError(str(exc)) from exc
    if subject is not None and subject != subjects.chunks(batch.collection):
        raise BatchRejectedError(
            f"batch for collection {batch.collection!r} arrived on {subject!r}; publish it on {subjects.chunks(batch.collection)!r}"
        )
    if not batch.model or batch.dimension <= 0:
        raise BatchRejectedError(
            f"batch of document {batch.document_id!r} has model {batch.model!r} and dimension {batch.dimension}; "
            "both must be set"
        )
    for chunk in batch.chunks:
        if len(chunk.vector) != batch.dimension:
            raise BatchRejectedError(
                f"chunk {chunk.id!r} of document {batch.document_id!r} has {len(chunk.vector)} dimensions, "
                f"the batch declares {batch.dimension}"
            )


class BatchWriter:
    def __init__(self, store: Store, locks: CollectionLocks, settings: VectorDbSettings, *, progress_interval_s: float = 10.0) -> None:
        self.store = store
        self.locks = locks
        self.settings = settings
        self.progress_interval_s = progress_interval_s
        self.stats = WriterStats()
        self._buffers: dict[str, list[_Pending]] = defaultdict(list)
        self._rows: dict[str, int] = defaultdict(int)
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._commit_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._commits: set[asyncio.Task[None]] = set()

    async def handle(self, event: CloudEvent[ChunkBatch], msg: Msg) -> None:
        """DurableConsumer handler: returns after the batch is committed, raises to nak or dead-letter it."""
        await self.submit(event.data, event.id, subject=msg.subject, msg=msg)

    async def submit(self, batch: ChunkBatch, event_id: str, *, subject: str | None = None, msg: Msg | None = None) -> None:
        try:
            validate_batch(batch, subject)
        except BatchRejectedError:
            self.stats.batches_rejected += 1
            raise

        pending = _Pending(batch, event_id)
        collection = batch.collection
        self._buffers[collection].append(pending)
        self._rows[collection] += max(1, len(batch.chunks))
        if self._rows[collection] >= self.settings.batch_max_rows:
            self._flush(collection)
        elif collection not in self._timers:
            self._timers[collection] = asyncio.create_task(self._flush_later(collection))

        await self._wait(pending, msg)

    async def _wait(self, pending: _Pending, msg: Msg | None) -> None:
        """Wait for the commit, telling the server the message is in progress so ack_wait does not expire."""
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(pending.future), self.progress_interval_s)
                return
            except TimeoutError:
                if msg is not None:
                    await msg.in_progress()

    async def _flush_later(self, collection: str) -> None:
        await asyncio.sleep(self.settings.batch_max_delay_s)
        self._timers.pop(collection, None)
        self._flush(collection)

    def _flush(self, collection: str) -> None:
        timer = self._timers.pop(collection, None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        pendings = self._buffers.pop(collection, [])
        self._rows.pop(collection, None)
        if not pendings:
            return
        task = asyncio.create_task(self._commit(collection, pendings))
        self._commits.add(task)
        task.add_done_callback(self._commits.discard)

    async def _commit(self, collection: str, pendings: list[_Pending]) -> None:
        try:
            async with self._commit_locks[collection], self.locks.hold(collection):
                await self._write(collection, pendings)
        except Exception as exc:  # noqa: BLE001 - every waiting handler gets the error and naks or dead-letters
            # A cached handle may point at a table that another process dropped; reopen it next time.
            self.store.forget(collection)
            logger.warning("commit of %d batches to %s failed: %s", len(pendings), collection, exc, exc_info=not isinstance(exc, BatchRejectedError))
            for pending in pendings:
                if not pending.future.done():
                    pending.future.set_exception(exc)

    async def _write(self, collection: str, pendings: list[_Pending]) -> None:
        table = await self.store.table_or_none(collection)
        if table is None:
            first = pendings[0].batch
            table = await self.store.create_table(collection, first.model, first.dimension)
        model, dimension = await self.store.model_of(table)

        accepted = []
        for pending in pendings:
            batch = pending.batch
            if (batch.model, batch.dimension) != (model, dimension):
                self.stats.batches_rejected += 1
                pending.future.set_exception(
                    ModelMismatchError(collection, expected=(model, dimension), got=(batch.model, batch.dimension))
                )
            else:
                accepted.append(pending)
        if not accepted:
            return

        newer = await self.store.newer_checksums(table, [pending.batch for pending in accepted])
        current = []
        for pending in accepted:
            if pending.batch.document_id in newer:
                logger.info(
                    "skipped batch %s: document %s already has a newer version",
                    pending.event_id,
                    pending.batch.document_id,
                    extra={"collection": collection},
                )
                self.stats.batches_skipped += 1
                pending.future.set_result(None)
            else:
                current.append(pending)
        if not current:
            return

        result = await self.store.upsert(table, [pending.batch for pending in current], model, dimension)
        self.stats.commits += 1
        self.stats.batches_committed += len(current)
        self.stats.rows_committed += result.inserted + result.updated
        logger.info(
            "committed %d batches to %s: %d inserted, %d updated, %d stale deleted, version %d",
            len(current),
            collection,
            result.inserted,
            result.updated,
            result.deleted,
            result.version,
            extra={"collection": collection, "batch_ids": [pending.event_id for pending in current]},
        )
        for pending in current:
            pending.future.set_result(None)

    async def stop(self) -> None:
        """Flush every buffer now and wait for the commits."""
        for collection in list(self._buffers):
            self._flush(collection)
        if self._commits:
            await asyncio.gather(*self._commits, return_exceptions=True)

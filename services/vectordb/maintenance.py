"""Background index building, compaction and version cleanup.

Every `maintenance_interval_s`, for each collection whose write lock is free:

- create the full-text index on `text` when it is missing;
- create the ANN index on `vector` once the table has `index_min_rows` rows;
- run `optimize` (compact small fragments, merge new rows into the indexes,
  delete versions older than `cleanup_older_than_s`) when there are small
  fragments or unindexed rows, or when this process has not cleaned up the
  table for `cleanup_older_than_s`.

Queries never take the write lock, and LanceDB readers keep using the
versions they have open while maintenance commits new ones. Maintenance
therefore does not block queries, although it competes with them for CPU. Rows that are not in an index
yet are still found, by a flat scan next to the index search.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from continuum.services.vectordb.locks import CollectionLocks
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.services.vectordb.store import FTS_INDEX, VECTOR_INDEX, Store

logger = logging.getLogger(__name__)


class Maintainer:
    def __init__(self, store: Store, locks: CollectionLocks, settings: VectorDbSettings) -> None:
        self.store = store
        self.locks = locks
        self.settings = settings
        self._last_optimize: dict[str, float] = {}

    async def run(self, stopping: asyncio.Event) -> None:
        logger.info("maintenance started, every %.0fs", self.settings.maintenance_interval_s)
        while not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.settings.maintenance_interval_s)
                break
            except TimeoutError:
                pass
            for collection in await self._collections():
                try:
                    await self.maintain(collection)
                except Exception:  # noqa: BLE001 - one failing table must not stop maintenance of the others
                    logger.error("maintenance of %s failed", collection, exc_info=True, extra={"collection": collection})
        logger.info("maintenance stopped")

    async def _collections(self) -> list[str]:
        try:
            return await self.store.collections()
        except Exception:  # noqa: BLE001 - storage may be briefly unreachable; the next pass retries
            logger.warning("listing collections for maintenance failed", exc_info=True)
            return []

    async def maintain(self, collection: str, *, wait: bool = False) -> list[str]:
        """Run one pass over a collection and return what it did; nothing when another process holds the lock."""
        async with self.locks.hold(collection, wait=wait) as held:
            if not held:
                return []
            return await self._maintain(collection)

    async def _optimize_due(self, collection: str, table: Any) -> bool:
        """Return True when fragments need compacting, rows need indexing, or old versions need cleanup.

        Checking the table instead of its version keeps two processes from
        re-optimizing after each other's optimize commits.
        """
        stats = await table.stats()
        if stats["fragment_stats"]["num_small_fragments"] > 1:
            return True
        for index in await table.list_indices():
            index_stats = await table.index_stats(index.name)
            if index_stats is not None and index_stats.num_unindexed_rows > 0:
                return True
        last = self._last_optimize.get(collection)
        return last is None or time.monotonic() - last >= self.settings.cleanup_older_than_s

    async def _maintain(self, collection: str) -> list[str]:
        table = await self.store.table(collection)
        await table.checkout_latest()
        actions: list[str] = []
        if await self.store.ensure_fts_index(table):
            actions.append("fts_index")

        indices = {index.name for index in await table.list_indices()}
        rows = await table.count_rows()
        if VECTOR_INDEX not in indices and rows >= self.settings.index_min_rows:
            await self.store.create_vector_index(table)
            actions.append("vector_index")

        if actions or await self._optimize_due(collection, table):
            stats = await self.store.optimize(table)
            actions.append("optimize")
            self._last_optimize[collection] = time.monotonic()
            logger.debug("optimize stats for %s: %s", collection, stats)

        if actions:
            unindexed = await self.store.unindexed_rows(table, FTS_INDEX)
            logger.info(
                "maintenance of %s: %s (%d rows, %s not in the full-text index)",
                collection,
                ", ".join(actions),
                rows,
                unindexed,
                extra={"collection": collection},
            )
        return actions

"""Background maintenance, read handles that see other processes' writes, and re-creating a dropped collection."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest

from continuum.services.vectordb.store import Store
from continuum.shared import bus
from continuum.shared.rpc import ApiCallError
from continuum.shared.schemas import CollectionRequest, CollectionStats, OkReply, QueryReply, QueryRequest
from vectordb_helpers import call, eventually, make_batch, publish_batch

pytestmark = pytest.mark.timeout(120)


def unit_vectors(count: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 16))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist()


async def stats_or_none(nc: bus.NATS, collection: str) -> CollectionStats | None:
    try:
        return await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
    except ApiCallError:
        return None


@pytest.fixture
def vectordb_settings(vectordb_settings: Any) -> Any:
    """Settings that make the background pass run often and index small tables."""
    return msgspec.structs.replace(vectordb_settings, maintenance_interval_s=0.5, index_min_rows=300, index_target_partition_size=100)


async def test_background_pass_builds_and_refreshes_indexes(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"maint-{unique}"
    for index in range(4):
        texts = [f"row {index}-{i}" for i in range(100)]
        await publish_batch(js, make_batch(collection, f"doc-{index}", texts, unit_vectors(100, index), model="synthetic"))

    async def indexed() -> bool:
        stats = await stats_or_none(nc, collection)
        if stats is None or not stats.info.indexed:
            return False
        return all(index.unindexed_rows == 0 for index in stats.indexes) and stats.info.rows == 400

    await eventually(indexed, timeout=60, what="both indexes to cover 400 rows")

    await publish_batch(js, make_batch(collection, "late", ["late row"] * 50, unit_vectors(50, 99), model="synthetic"))
    await eventually(indexed_rows(nc, collection, 450), timeout=60, what="the late rows to be indexed")

    reply = await call(nc, "query", QueryRequest(collection=collection, text="late", mode="fts", k=3), QueryReply)
    assert {hit.document_id for hit in reply.hits} == {"late"}


def indexed_rows(nc: bus.NATS, collection: str, rows: int) -> Any:
    async def check() -> bool:
        stats = await stats_or_none(nc, collection)
        return stats is not None and all(index.indexed_rows == rows for index in stats.indexes) and len(stats.indexes) == 2

    return check


async def test_second_reader_sees_new_versions(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, vectordb_settings: Any, unique: str
) -> None:
    collection = f"reader-{unique}"
    await publish_batch(js, make_batch(collection, "a", ["first"], unit_vectors(1, 1), model="synthetic"))
    await eventually(lambda: _rows_are(nc, collection, 1), what="one row")

    reader = Store(vectordb_settings)
    await reader.open()
    try:
        table = await reader.table(collection)
        assert await table.count_rows() == 1

        await publish_batch(js, make_batch(collection, "b", ["second", "third"], unit_vectors(2, 2), model="synthetic"))
        await eventually(lambda: _rows_are(nc, collection, 3), what="three rows")

        async def reader_sees_three() -> bool:
            return await table.count_rows() == 3

        await eventually(reader_sees_three, what="the second reader to see three rows")
    finally:
        await reader.close()


async def _rows_are(nc: bus.NATS, collection: str, rows: int) -> bool:
    stats = await stats_or_none(nc, collection)
    return stats is not None and stats.info.rows == rows


async def test_dropped_collection_can_be_recreated_with_new_model(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"recreate-{unique}"
    await publish_batch(js, make_batch(collection, "a", ["first"], unit_vectors(1, 1), model="old-model"))
    await eventually(lambda: _rows_are(nc, collection, 1), what="one row")

    await call(nc, "drop", CollectionRequest(collection=collection), OkReply)
    await publish_batch(js, make_batch(collection, "b", ["second"], unit_vectors(1, 2), model="new-model"))
    await eventually(lambda: _rows_are(nc, collection, 1), what="one row in the new table")

    stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
    assert stats.info.model == "new-model"
    assert stats.documents == 1

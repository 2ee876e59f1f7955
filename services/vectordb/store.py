"""LanceDB access: one table per collection, upserts, searches and collection management.

Each table records its embedding model and dimension in the Arrow schema
metadata (`continuum.model`, `continuum.dimension`). Vectors are compared
with cosine distance, and a hit's `score` is `1 - distance`. Metadata is
stored as a `lance.json` column so that filters can read single keys.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import lancedb
from lancedb.index import FTS, IvfHnswSq, IvfPq
from lancedb.table import AsyncTable

from continuum.services.vectordb.errors import CollectionNotFoundError
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.shared.schemas import ChunkBatch, CollectionInfo

logger = logging.getLogger(__name__)

MODEL_KEY = b"continuum.model"
DIMENSION_KEY = b"continuum.dimension"
VECTOR_INDEX = "vector_idx"
FTS_INDEX = "text_idx"
RESULT_COLUMNS = ["id", "text", "document_id", "source_uri", "title", "heading_path", "chunk_index", "metadata"]
VECTOR_RESULT_COLUMNS = [*RESULT_COLUMNS, "_distance"]
FTS_RESULT_COLUMNS = [*RESULT_COLUMNS, "_score"]


def table_schema(model: str, dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
            pa.field("document_id", pa.string()),
            pa.field("doc_checksum", pa.string()),
            pa.field("source_uri", pa.string()),
            pa.field("title", pa.string()),
            pa.field("heading_path", pa.list_(pa.string())),
            pa.field("chunk_index", pa.int32()),
            pa.field("char_start", pa.int64()),
            pa.field("char_end", pa.int64()),
            pa.field("token_count", pa.int32()),
            pa.field("metadata", pa.json_(pa.utf8())),
            pa.field("job_id", pa.string()),
            pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        ],
        metadata={MODEL_KEY: model.encode(), DIMENSION_KEY: str(dimension).encode()},
    )


def batches_to_arrow(batches: list[ChunkBatch], model: str, dimension: int) -> pa.Table:
    """Build the rows of several batches; a later batch's chunk wins over an earlier one with the same id.

    The rows follow `table_schema`, not the stored table's schema: LanceDB
    reports the JSON column as `large_binary`, and only an Arrow JSON column
    is converted to the binary JSON form that the `json_get_*` filters read.
    """
    schema = table_schema(model, dimension)
    rows: dict[str, tuple[ChunkBatch, Any]] = {}
    for batch in batches:
        for chunk in batch.chunks:
            rows[chunk.id] = (batch, chunk)
    pairs = list(rows.values())
    vectors = np.asarray([chunk.vector for _, chunk in pairs], dtype=np.float32).reshape(-1)
    columns = {
        "id": [chunk.id for _, chunk in pairs],
        "text": [chunk.text for _, chunk in pairs],
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors, pa.float32()), dimension),
        "document_id": [batch.document_id for batch, _ in pairs],
        "doc_checksum": [batch.doc_checksum for batch, _ in pairs],
        "source_uri": [chunk.source_uri for _, chunk in pairs],
        "title": [chunk.title for _, chunk in pairs],
        "heading_path": [list(chunk.heading_path) for _, chunk in pairs],
        "chunk_index": [chunk.chunk_index for _, chunk in pairs],
        "char_start": [chunk.char_start for _, chunk in pairs],
        "char_end": [chunk.char_end for _, chunk in pairs],
        "token_count": [chunk.token_count for _, chunk in pairs],
        "metadata": [json.dumps(chunk.metadata, default=str) for _, chunk in pairs],
        "job_id": [batch.job_id for batch, _ in pairs],
        "ingested_at": [batch.at for batch, _ in pairs],
    }
    arrays = [pa.array(columns[field.name], type=field.type) if field.name != "vector" else columns["vector"] for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def quote(value: str) -> str:
    """Quote a string as a SQL literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass
class CommitResult:
    version: int
    inserted: int
    updated: int
    deleted: int


class Store:
    """The LanceDB connection of one service process, with a cache of open table handles."""

    def __init__(self, settings: VectorDbSettings) -> None:
        self.settings = settings
        self._db: lancedb.AsyncConnection | None = None
        self._tables: dict[str, AsyncTable] = {}
        self._models: dict[str, tuple[str, int]] = {}

    async def open(self) -> None:
        self._db = await lancedb.connect_async(
            self.settings.uri,
            storage_options=self.settings.storage_options or None,
            read_consistency_interval=timedelta(seconds=self.settings.read_consistency_s),
        )
        logger.info("opened LanceDB at %s", self.settings.uri)

    @property
    def db(self) -> lancedb.AsyncConnection:
        if self._db is None:
            raise RuntimeError("Store.open() must run before the store is used")
        return self._db

    async def close(self) -> None:
        for table in self._tables.values():
            table.close()
        self._tables.clear()
        if self._db is not None:
            self._db.close()

    # Tables -------------------------------------------------------------

    async def collections(self) -> list[str]:
        names: list[str] = []
        page_token: str | None = None
        while True:
            page = await self.db.list_tables(page_token=page_token, limit=1000)
            names.extend(page.tables)
            if not page.page_token:
                return names
            page_token = page.page_token

    async def table(self, collection: str) -> AsyncTable:
        """Return an open handle, raising CollectionNotFoundError when the table does not exist."""
        # NOTE: a handle stays cached after another process drops the table; a failed commit
        # reopens it, but queries here may read the dropped table until this process restarts.
        cached = self._tables.get(collection)
        if cached is not None:
            return cached
        try:
            table = await self.db.open_table(collection)
        except ValueError as exc:
            raise CollectionNotFoundError(collection) from exc
        self._tables[collection] = table
        return table

    async def table_or_none(self, collection: str) -> AsyncTable | None:
        try:
            return await self.table(collection)
        except CollectionNotFoundError:
            return None

    async def create_table(self, collection: str, model: str, dimension: int) -> AsyncTable:
        table = await self.db.create_table(collection, schema=table_schema(model, dimension), exist_ok=True)
        self._tables[collection] = table
        logger.info("created table %s for model %s (%d dimensions)", collection, model, dimension)
        await self.ensure_fts_index(table)
        return table

    def forget(self, collection: str) -> None:
        self._models.pop(collection, None)
        table = self._tables.pop(collection, None)
        if table is not None:
            table.close()

    async def model_of(self, table: AsyncTable) -> tuple[str, int]:
        """Return the table's (model, dimension), cached because they never change for a table."""
        cached = self._models.get(table.name)
        if cached is not None:
            return cached
        metadata = (await table.schema()).metadata or {}
        model = (metadata.get(MODEL_KEY, b"").decode(), int(metadata.get(DIMENSION_KEY, b"0")))
        self._models[table.name] = model
        return model

    # Writes -------------------------------------------------------------

    async def newer_checksums(self, table: AsyncTable, batches: list[ChunkBatch]) -> set[str]:
        """Return the ids of documents whose stored rows are newer than the batch for them.

        A redelivered batch of an old version of a document must not replace
        (or delete) the rows of the version that came after it.
        """
        documents = {batch.document_id: batch for batch in batches}
        ids = ", ".join(quote(document_id) for document_id in documents)
        rows = await (
            table.query()
            .where(f"document_id IN ({ids})")
            .select(["document_id", "doc_checksum", "ingested_at"])
            .to_list()
        )
        newer = set()
        for row in rows:
            batch = documents[row["document_id"]]
            if row["doc_checksum"] != batch.doc_checksum and row["ingested_at"] > batch.at:
                newer.add(batch.document_id)
        return newer

    async def upsert(self, table: AsyncTable, batches: list[ChunkBatch], model: str, dimension: int) -> CommitResult:
        """Upsert the chunks and delete each document's rows with another checksum, in one commit."""
        # When one commit holds two versions of a document, the one with the later `at` wins.
        newest: dict[str, ChunkBatch] = {}
        for batch in batches:
            known = newest.get(batch.document_id)
            if known is None or batch.at >= known.at:
                newest[batch.document_id] = batch
        latest = {document_id: batch.doc_checksum for document_id, batch in newest.items()}
        current = [batch for batch in batches if latest[batch.document_id] == batch.doc_checksum]
        data = batches_to_arrow(current, model, dimension)
        stale = " OR ".join(
            f"(document_id = {quote(document_id)} AND doc_checksum != {quote(checksum)})"
            for document_id, checksum in latest.items()
        )
        result = await (
            table.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(stale)
            .execute(data)
        )
        return CommitResult(
            version=result.version,
            inserted=result.num_inserted_rows,
            updated=result.num_updated_rows,
            deleted=result.num_deleted_rows,
        )

    async def delete_document(self, collection: str, document_id: str) -> int:
        table = await self.table(collection)
        result = await table.delete(f"document_id = {quote(document_id)}")
        return result.num_deleted_rows

    async def drop(self, collection: str) -> None:
        await self.table(collection)
        self.forget(collection)
        await self.db.drop_table(collection)

    # Indexes and maintenance -------------------------------------------

    async def ensure_fts_index(self, table: AsyncTable) -> bool:
        if any(index.name == FTS_INDEX for index in await table.list_indices()):
            return False
        await table.create_index("text", config=FTS(), name=FTS_INDEX)
        return True

    async def create_vector_index(self, table: AsyncTable) -> None:
        settings = self.settings
        if settings.index_type == "IVF_PQ":
            _, dimension = await self.model_of(table)
            config: Any = IvfPq(
                distance_type="cosine",
                target_partition_size=settings.index_target_partition_size,
                num_sub_vectors=_sub_vectors(dimension),
            )
        else:
            config = IvfHnswSq(distance_type="cosine", target_partition_size=settings.index_target_partition_size)
        await table.create_index("vector", config=config, name=VECTOR_INDEX, replace=True)

    async def optimize(self, table: AsyncTable) -> Any:
        """Compact fragments, merge new rows into the indexes, and delete versions older than the cleanup age."""
        return await table.optimize(cleanup_older_than=timedelta(seconds=self.settings.cleanup_older_than_s))

    # Reads --------------------------------------------------------------

    async def info(self, collection: str) -> CollectionInfo:
        table = await self.table(collection)
        model, dimension = await self.model_of(table)
        indices = {index.name: index for index in await table.list_indices()}
        return CollectionInfo(
            name=collection,
            rows=await table.count_rows(),
            model=model,
            dimension=dimension,
            indexed=VECTOR_INDEX in indices,
            fts_indexed=FTS_INDEX in indices,
            version=await table.version(),
        )

    async def unindexed_rows(self, table: AsyncTable, index_name: str) -> int | None:
        stats = await table.index_stats(index_name)
        return None if stats is None else stats.num_unindexed_rows


def _sub_vectors(dimension: int) -> int:
    """Pick PQ sub-vectors of 8 dimensions, or fewer when the dimension does not divide."""
    for width in (8, 4, 2, 1):
        if dimension % width == 0:
            return dimension // width
    return dimension


def now() -> datetime:
    return datetime.now(UTC)

"""Vector DB queries and collection management on `ctm.vector.*`."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from continuum.shared.schemas._base import Event

FilterOperator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "contains"]
QueryMode = Literal["vector", "fts", "hybrid"]


class Filter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One metadata condition; conditions in a list are combined with AND.

    `field` is a column (`source_uri`, `document_id`, `title`) or
    `metadata.<key>`. The service translates filters into a query with quoted
    literals; callers never send SQL.
    """

    field: str
    op: FilterOperator = "eq"
    value: Any


class QueryRequest(Event, kw_only=True):
    """Similarity query: `text` (embedded with the collection's model) or `vector`."""

    CE_TYPE = "continuum.vector.query.v1"

    collection: str
    text: str | None = None
    vector: list[float] | None = None
    k: int = 10
    mode: QueryMode = "vector"
    filters: list[Filter] = msgspec.field(default_factory=list)


class Hit(msgspec.Struct, kw_only=True):
    """One result; `score` is higher for better matches in every mode."""

    id: str
    score: float
    text: str
    document_id: str = ""
    source_uri: str = ""
    title: str = ""
    heading_path: list[str] = msgspec.field(default_factory=list)
    chunk_index: int = 0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class QueryReply(Event, kw_only=True):
    CE_TYPE = "continuum.vector.query.reply.v1"

    collection: str
    mode: QueryMode
    hits: list[Hit]
    took_ms: float = 0.0


class CollectionInfo(msgspec.Struct, kw_only=True):
    name: str
    rows: int
    model: str = ""
    dimension: int = 0
    indexed: bool = False
    fts_indexed: bool = False
    version: int = 0


class CollectionRequest(Event, kw_only=True):
    """A request about one collection: stats, drop or maintenance."""

    CE_TYPE = "continuum.vector.collection.v1"

    collection: str


class CollectionsReply(Event, kw_only=True):
    CE_TYPE = "continuum.vector.collections.reply.v1"

    collections: list[CollectionInfo]


class IndexStats(msgspec.Struct, kw_only=True):
    """One index of a collection; `unindexed_rows` are searched by a flat scan until maintenance merges them."""

    name: str
    index_type: str
    columns: list[str]
    indexed_rows: int = 0
    unindexed_rows: int = 0


class CollectionStats(Event, kw_only=True):
    """Collection details: `fragments` counts data files, which compaction merges."""

    CE_TYPE = "continuum.vector.stats.reply.v1"

    info: CollectionInfo
    documents: int = 0
    fragments: int = 0
    small_fragments: int = 0
    total_bytes: int = 0
    indexes: list[IndexStats] = msgspec.field(default_factory=list)


class DeleteDocumentRequest(Event, kw_only=True):
    CE_TYPE = "continuum.vector.delete_document.v1"

    collection: str
    document_id: str


class DeleteDocumentReply(Event, kw_only=True):
    CE_TYPE = "continuum.vector.delete_document.reply.v1"

    collection: str
    document_id: str
    deleted: int


class MaintainReply(Event, kw_only=True):
    """What one maintenance pass did: `actions` such as `fts_index`, `vector_index`, `optimize`; empty when the lock was busy or nothing was due."""

    CE_TYPE = "continuum.vector.maintain.reply.v1"

    collection: str
    actions: list[str] = msgspec.field(default_factory=list)

"""Ingest requests, job status, chunk batches and embedding requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from continuum.shared.schemas._base import Event, utcnow


class ChunkingOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Chunk size limits, counted in tokens of the embedding model's tokenizer."""

    max_tokens: int = 256
    overlap_tokens: int = 32


class IngestRequest(Event, kw_only=True):
    """A request on `ctm.ingest` to turn a source into chunks of a collection.

    `source` is `s3://bucket/prefix`, `objstore://bucket/prefix`, a local path
    (file, directory or glob, resolved inside the configured roots), or
    `inline:` followed by the text itself (or use `text`). `fields` names the
    JSON / JSON Lines fields that hold text.
    """

    CE_TYPE = "continuum.ingest.request.v1"

    collection: str
    source: str = ""
    text: str | None = None
    job_id: str | None = None
    glob: str | None = None
    fields: list[str] = msgspec.field(default_factory=list)
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    chunking: ChunkingOptions = msgspec.field(default_factory=ChunkingOptions)


class DocumentError(msgspec.Struct, kw_only=True):
    """A document that failed, and why; the rest of the job goes on."""

    document: str
    reason: str


JobState = Literal["queued", "running", "completed", "failed"]


class IngestStatus(Event, kw_only=True):
    """Progress of an ingest job, on `ctm.ingest.<job_id>.status`."""

    CE_TYPE = "continuum.ingest.status.v1"

    job_id: str
    collection: str
    state: JobState
    documents_total: int = 0
    documents_done: int = 0
    documents_skipped: int = 0
    chunks: int = 0
    errors: list[DocumentError] = msgspec.field(default_factory=list)
    message: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)


class Chunk(msgspec.Struct, kw_only=True):
    """One chunk of a document with its vector.

    `id` is deterministic (derived from the collection, source URI and chunk
    text position), so re-ingesting the same document upserts the same rows.
    `char_start`/`char_end` index the cleaned document text.
    """

    id: str
    text: str
    vector: list[float]
    source_uri: str
    title: str = ""
    heading_path: list[str] = msgspec.field(default_factory=list)
    char_start: int = 0
    char_end: int = 0
    chunk_index: int = 0
    token_count: int = 0
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class ChunkBatch(Event, kw_only=True):
    """Chunks of one document, on `ctm.chunks.<collection>`.

    A document may span several batches (`batch_index` of `batch_count`).
    `doc_checksum` is the SHA-256 of the cleaned document text: the vector DB
    deletes the document's rows whose checksum differs, so a changed document
    leaves no stale chunks.
    """

    CE_TYPE = "continuum.chunks.batch.v1"

    collection: str
    document_id: str
    doc_checksum: str
    model: str
    dimension: int
    chunks: list[Chunk]
    batch_index: int = 0
    batch_count: int = 1
    job_id: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)


class EmbedRequest(Event, kw_only=True):
    """Texts to embed on `ctm.embed`; `kind` is `query` or `document` for models that tell them apart."""

    CE_TYPE = "continuum.embed.request.v1"

    texts: list[str]
    kind: Literal["query", "document"] = "query"


class EmbedReply(Event, kw_only=True):
    CE_TYPE = "continuum.embed.reply.v1"

    model: str
    dimension: int
    vectors: list[list[float]]

"""One ingest job: list, read, parse, clean, chunk, embed, publish chunk batches, report status."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from continuum.services.dataprep.chunking import Chunker, ChunkSpan
from continuum.services.dataprep.cleaning import clean_document
from continuum.services.dataprep.documents import CleanDocument, RawDocument, chunk_id, document_id
from continuum.services.dataprep.embedders import Embedder, embed_texts
from continuum.services.dataprep.errors import DocumentError, ParseError
from continuum.services.dataprep.parsers import parse
from continuum.services.dataprep.sources import DocumentRef, SourceResolver
from continuum.shared.logs import log_context
from continuum.shared.schemas._base import utcnow
from continuum.shared.schemas.ingest import Chunk, ChunkBatch, DocumentError as DocumentFailure, IngestRequest, IngestStatus

logger = logging.getLogger(__name__)

ReportStatus = Callable[[IngestStatus], Awaitable[None]]
PublishBatch = Callable[[ChunkBatch, str], Awaitable[None]]
Heartbeat = Callable[[], Awaitable[None]]

# Progress events are sent at most this often (seconds), plus the final one.
STATUS_INTERVAL_S = 0.25


@dataclass
class PreparedDocument:
    """A cleaned document and its chunk spans, ready to embed."""

    document: CleanDocument
    spans: list[ChunkSpan]


@dataclass
class JobContext:
    request: IngestRequest
    job_id: str
    status: IngestStatus
    seen_checksums: set[str] = field(default_factory=set)
    last_report: float = 0.0


class IngestPipeline:
    """Runs ingest jobs; the service supplies how batches and status events are published."""

    def __init__(
        self,
        *,
        resolver: SourceResolver,
        chunker: Chunker,
        embedder: Embedder,
        publish_batch: PublishBatch,
        report_status: ReportStatus,
        chunks_per_batch: int = 64,
    ) -> None:
        self.resolver = resolver
        self.chunker = chunker
        self.embedder = embedder
        self.publish_batch = publish_batch
        self.report_status = report_status
        self.chunks_per_batch = chunks_per_batch

    async def run(self, request: IngestRequest, job_id: str, heartbeat: Heartbeat) -> IngestStatus:
        """Run the job to completion; per-document failures land in `status.errors`.

        Raises RequestError (the whole request is invalid) before any document is read.
        """
        options = request.chunking
        self.chunker.validate(options.max_tokens, options.overlap_tokens)
        status = IngestStatus(job_id=job_id, collection=request.collection, state="running", message="listing")
        job = JobContext(request, job_id, status)
        await self._report(job, force=True)

        refs = await self.resolver.list(request)
        status.documents_total = len(refs)
        status.message = ""
        await self._report(job, force=True)
        logger.info("ingest job %s: %d documents", job_id, len(refs))

        for ref in refs:
            await heartbeat()
            with log_context(job_id=job_id, document=ref.uri):
                await self._ingest_one(job, ref, heartbeat)
            await self._report(job)

        status.state = "completed"
        status.message = f"{status.documents_done} documents, {status.chunks} chunks, {len(status.errors)} errors"
        await self._report(job, force=True)
        logger.info("ingest job %s completed: %s", job_id, status.message)
        return status

    async def _ingest_one(self, job: JobContext, ref: DocumentRef, heartbeat: Heartbeat) -> None:
        status = job.status
        try:
            if ref.error or ref.read is None:
                raise DocumentError(ref.error or f"{ref.uri}: cannot be read", document=ref.uri)
            raw = await ref.read()
            try:
                prepared = await asyncio.to_thread(self._prepare_isolated, raw, job.request)
            finally:
                raw.close()
            if prepared.document.checksum in job.seen_checksums:
                status.documents_skipped += 1
                logger.info("skipped %s: same text as an earlier document of this job", ref.uri)
                return
            job.seen_checksums.add(prepared.document.checksum)
            chunks = await self._embed(prepared, job.request, heartbeat)
            await self._publish(job, prepared.document, chunks)
        except DocumentError as exc:
            logger.warning("document failed: %s", exc)
            status.errors.append(DocumentFailure(document=ref.uri, reason=str(exc)))
            return
        status.documents_done += 1
        status.chunks += len(chunks)

    def _prepare_isolated(self, raw: RawDocument, request: IngestRequest) -> PreparedDocument:
        """Run `prepare`, turning an unexpected error into a ParseError so it fails only this document."""
        try:
            return self.prepare(raw, request)
        except DocumentError:
            raise
        except Exception as exc:  # noqa: BLE001 - parsers can raise anything (RecursionError on deep JSON)
            logger.error("unexpected error while parsing %s", raw.uri, exc_info=True)
            raise ParseError(f"{raw.uri}: cannot parse: {type(exc).__name__}: {exc}", document=raw.uri) from exc

    def prepare(self, raw: RawDocument, request: IngestRequest) -> PreparedDocument:
        """Parse, clean and chunk one document (CPU-bound; runs in a worker thread)."""
        title, blocks = parse(raw, request.fields)
        metadata = {**request.metadata, **raw.metadata}
        metadata.pop("source_uri", None)
        document = clean_document(raw.uri, title, blocks, metadata)
        if not document.text:
            raise ParseError(f"{raw.uri}: no text left after cleaning (empty document?)", document=raw.uri)
        options = request.chunking
        spans = self.chunker.chunk(document, options.max_tokens, options.overlap_tokens)
        return PreparedDocument(document, spans)

    async def _embed(self, prepared: PreparedDocument, request: IngestRequest, heartbeat: Heartbeat) -> list[Chunk]:
        document = prepared.document
        checksum = document.checksum
        texts = [document.text[span.start : span.end] for span in prepared.spans]
        vectors = await embed_texts(self.embedder, texts)
        await heartbeat()
        return [
            Chunk(
                id=chunk_id(request.collection, document.uri, checksum, index),
                text=text,
                vector=vector,
                source_uri=document.uri,
                title=document.title,
                heading_path=span.heading_path,
                char_start=span.start,
                char_end=span.end,
                chunk_index=index,
                token_count=span.token_count,
                metadata=document.metadata,
            )
            for index, (span, text, vector) in enumerate(zip(prepared.spans, texts, vectors))
        ]

    async def _publish(self, job: JobContext, document: CleanDocument, chunks: list[Chunk]) -> None:
        collection = job.request.collection
        doc_id = document_id(collection, document.uri)
        checksum = document.checksum
        size = self.chunks_per_batch
        count = max(1, -(-len(chunks) // size))
        for index in range(count):
            batch = ChunkBatch(
                collection=collection,
                document_id=doc_id,
                doc_checksum=checksum,
                model=self.embedder.name,
                dimension=self.embedder.dimension,
                chunks=chunks[index * size : (index + 1) * size],
                batch_index=index,
                batch_count=count,
                job_id=job.job_id,
            )
            # The id depends only on the content, so a redelivered job is
            # de-duplicated by JetStream inside the stream's duplicate window.
            await self.publish_batch(batch, f"chunks-{collection}-{doc_id}-{checksum[:16]}-{index}")

    async def _report(self, job: JobContext, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - job.last_report < STATUS_INTERVAL_S:
            return
        job.last_report = now
        job.status.at = utcnow()
        await self.report_status(job.status)

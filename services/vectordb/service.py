"""Service wiring: the chunk consumer, the maintenance loop and the `ctm.vector.*` endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from continuum.services.vectordb.errors import CollectionNotFoundError, LockTimeoutError
from continuum.services.vectordb.locks import BUCKET, CollectionLocks
from continuum.services.vectordb.maintenance import Maintainer
from continuum.services.vectordb.queries import QueryEngine
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.services.vectordb.store import Store
from continuum.services.vectordb.writer import BatchWriter
from continuum.shared import subjects
from continuum.shared.bus import DurableConsumer
from continuum.shared.config import load_section
from continuum.shared.rpc import ApiFailure, Endpoint, start_service
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import (
    ChunkBatch,
    CollectionRequest,
    CollectionsReply,
    CollectionStats,
    DeleteDocumentReply,
    DeleteDocumentRequest,
    EmptyRequest,
    IndexStats,
    MaintainReply,
    OkReply,
    QueryRequest,
)
from continuum.shared.topology import BUCKETS, ProvisionReport, ensure_bucket, find_consumer

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


def _translate_errors(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """Map the service's errors to structured API errors for the caller."""

    async def wrapped(request: Any) -> Any:
        try:
            return await handler(request)
        except CollectionNotFoundError as exc:
            raise ApiFailure("not_found", str(exc), field="collection") from exc
        except LockTimeoutError as exc:
            raise ApiFailure("unavailable", str(exc), field="collection") from exc

    return wrapped


def _check_collection(name: str) -> None:
    try:
        subjects.validate_name(name, kind="collection name")
    except ValueError as exc:
        raise ApiFailure("bad_request", str(exc), field="collection") from exc


class VectorDbService:
    def __init__(self, settings: VectorDbSettings | None = None) -> None:
        self._settings = settings
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.consumer: DurableConsumer[ChunkBatch] | None = None
        self.writer: BatchWriter | None = None
        self.maintainer: Maintainer | None = None
        self._micro: Any = None

    async def start(self, context: ServiceContext) -> None:
        settings = self._settings or load_section("vectordb", VectorDbSettings, context.config_path)
        if not settings.uri:
            settings.uri = str(Path(context.settings.state_dir) / "vectordb")
        self.settings = settings
        self.store = Store(settings)
        await self.store.open()

        bucket = next(spec for spec in BUCKETS if spec.name == BUCKET)
        await ensure_bucket(context.js, bucket, context.settings.jetstream, ProvisionReport())
        kv = await context.js.key_value(BUCKET)
        self.locks = CollectionLocks(kv, context.instance_id, ttl_s=settings.lock_ttl_s, wait_s=settings.lock_wait_s)

        self.writer = BatchWriter(self.store, self.locks, settings)
        self.maintainer = Maintainer(self.store, self.locks, settings)
        self.engine = QueryEngine(self.store, context.nc, settings)

        self._micro = await start_service(
            context.nc,
            name="vectordb",
            version=VERSION,
            description="Chunk storage and vector, full-text and hybrid search on LanceDB.",
            endpoints=self._endpoints(),
        )
        self.consumer = DurableConsumer(
            context.js,
            find_consumer("vectordb", "CHUNKS"),
            ChunkBatch,
            self.writer.handle,
            service="vectordb",
            concurrency=settings.max_pending_messages,
        )
        self._tasks = [
            asyncio.create_task(self.consumer.run()),
            asyncio.create_task(self.maintainer.run(self._stopping)),
        ]
        logger.info("vectordb storing at %s, instance %s", settings.uri, context.instance_id)

    def _endpoints(self) -> list[Endpoint]:
        def endpoint(name: str, request: type[Any], handler: Callable[[Any], Awaitable[Any]], description: str) -> Endpoint:
            return Endpoint(name, subjects.vector(name), request, _translate_errors(handler), description)

        return [
            endpoint("query", QueryRequest, self.engine.query, "Vector, full-text or hybrid query of a collection."),
            endpoint("collections", EmptyRequest, self._handle_collections, "List collections with row counts and model."),
            endpoint("stats", CollectionRequest, self._handle_stats, "Rows, documents, fragments and indexes of a collection."),
            endpoint("delete_document", DeleteDocumentRequest, self._handle_delete_document, "Delete every chunk of a document."),
            endpoint("drop", CollectionRequest, self._handle_drop, "Drop a collection and its table."),
            endpoint("maintain", CollectionRequest, self._handle_maintain, "Build due indexes and compact a collection now."),
        ]

    async def _handle_collections(self, _: EmptyRequest) -> CollectionsReply:
        infos = []
        for name in await self.store.collections():
            try:
                infos.append(await self.store.info(name))
            except CollectionNotFoundError:
                continue
        return CollectionsReply(collections=infos)

    async def _handle_stats(self, request: CollectionRequest) -> CollectionStats:
        _check_collection(request.collection)
        info = await self.store.info(request.collection)
        table = await self.store.table(request.collection)
        stats = await table.stats()
        fragments = stats["fragment_stats"]
        # NOTE: counting documents scans the document_id column of the whole table.
        ids = (await table.query().select(["document_id"]).to_arrow()).column("document_id")
        indexes = []
        for index in await table.list_indices():
            index_stats = await table.index_stats(index.name)
            indexes.append(
                IndexStats(
                    name=index.name,
                    index_type=str(index.index_type),
                    columns=list(index.columns),
                    indexed_rows=index_stats.num_indexed_rows if index_stats else 0,
                    unindexed_rows=index_stats.num_unindexed_rows if index_stats else 0,
                )
            )
        return CollectionStats(
            info=info,
            documents=pc.count_distinct(ids).as_py() if len(ids) else 0,
            fragments=fragments["num_fragments"],
            small_fragments=fragments["num_small_fragments"],
            total_bytes=stats["total_bytes"],
            indexes=indexes,
        )

    async def _handle_delete_document(self, request: DeleteDocumentRequest) -> DeleteDocumentReply:
        _check_collection(request.collection)
        if not request.document_id:
            raise ApiFailure("bad_request", "document_id must not be empty", field="document_id")
        await self.store.table(request.collection)
        async with self.locks.hold(request.collection):
            deleted = await self.store.delete_document(request.collection, request.document_id)
        logger.info("deleted document %s from %s (%d rows)", request.document_id, request.collection, deleted)
        return DeleteDocumentReply(collection=request.collection, document_id=request.document_id, deleted=deleted)

    async def _handle_drop(self, request: CollectionRequest) -> OkReply:
        _check_collection(request.collection)
        async with self.locks.hold(request.collection):
            await self.store.drop(request.collection)
        logger.info("dropped collection %s", request.collection)
        return OkReply(message=f"collection {request.collection!r} dropped")

    async def _handle_maintain(self, request: CollectionRequest) -> MaintainReply:
        _check_collection(request.collection)
        await self.store.table(request.collection)
        assert self.maintainer is not None
        actions = await self.maintainer.maintain(request.collection, wait=True)
        return MaintainReply(collection=request.collection, actions=actions)

    async def stop(self) -> None:
        self._stopping.set()
        if self._micro is not None:
            await self._micro.stop()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.writer is not None:
            await self.writer.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

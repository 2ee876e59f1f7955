"""Service wiring: the shared `dataprep` durable on INGEST, and the `ctm.embed` endpoint."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.aio.msg import Msg

from continuum.services.dataprep.chunking import Chunker
from continuum.services.dataprep.embedders import Embedder, create_embedder, embed_texts
from continuum.services.dataprep.errors import EmbedderError, RequestError
from continuum.services.dataprep.pipeline import IngestPipeline
from continuum.services.dataprep.settings import DataprepSettings, load_dataprep_settings
from continuum.services.dataprep.sources import SourceResolver
from continuum.shared import bus, subjects
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import PermanentError, PublishError, SubjectError, TransientError
from continuum.shared.rpc import ApiFailure, Endpoint, start_service
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas.ingest import ChunkBatch, EmbedReply, EmbedRequest, IngestRequest, IngestStatus
from continuum.shared.topology import find_consumer

logger = logging.getLogger(__name__)

VERSION = "0.1.0"
# Texts per `ctm.embed` request; larger requests are rejected with a clear error.
MAX_EMBED_TEXTS = 512
# Seconds between in-progress acks while a long job runs (ack_wait is 300 s).
HEARTBEAT_INTERVAL_S = 10.0


class DataprepService:
    """Consume ingest requests and serve embeddings.

    `settings` and `embedder` may be passed in (tests share one loaded model);
    otherwise they come from the `[dataprep]` config and are built at start.
    """

    def __init__(self, settings: DataprepSettings | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.jobs_started = 0
        self._consumer: bus.DurableConsumer[IngestRequest] | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._micro: Any = None

    async def start(self, context: ServiceContext) -> None:
        self.context = context
        if self.settings is None:
            self.settings = load_dataprep_settings(context.config_path)
        if self.embedder is None:
            logger.info("loading embedder %s", self.settings.embedder)
            self.embedder = await asyncio.to_thread(create_embedder, self.settings, context.settings.state_dir)
        chunker = Chunker(self.embedder.tokenizer(), model_max_tokens=self.embedder.max_tokens)
        self.pipeline = IngestPipeline(
            resolver=SourceResolver(self.settings, js=context.js),
            chunker=chunker,
            embedder=self.embedder,
            publish_batch=self._publish_batch,
            report_status=self._report_status,
            chunks_per_batch=self.settings.chunks_per_batch,
        )
        self._micro = await start_service(
            context.nc,
            name="dataprep",
            version=VERSION,
            description="Embeds texts with the platform model.",
            endpoints=[
                Endpoint("embed", subjects.EMBED, EmbedRequest, self._handle_embed, "Embed texts (EmbedRequest -> EmbedReply).")
            ],
        )
        self._consumer = bus.DurableConsumer(
            context.js,
            find_consumer("dataprep", "INGEST"),
            IngestRequest,
            self._handle_ingest,
            service="dataprep",
            concurrency=max(1, self.settings.concurrency),
        )
        self._consumer_task = asyncio.create_task(self._consumer.run())
        logger.info("dataprep ready: model %s (%d dimensions)", self.embedder.name, self.embedder.dimension)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._consumer_task is not None:
            self._consumer_task.cancel()
            await asyncio.gather(self._consumer_task, return_exceptions=True)
        if self._micro is not None:
            await self._micro.stop()

    # Ingest -------------------------------------------------------------------

    async def _handle_ingest(self, event: CloudEvent[IngestRequest], msg: Msg) -> None:
        request = event.data
        job_id = request.job_id or event.id
        try:
            subjects.validate_name(job_id, kind="job id")
            subjects.validate_name(request.collection, kind="collection name")
        except SubjectError as exc:
            # Without a valid job id there is no status subject to report on.
            raise PermanentError(str(exc)) from exc
        self.jobs_started += 1
        heartbeat = _Heartbeat(msg)
        try:
            await self.pipeline.run(request, job_id, heartbeat)
        except RequestError as exc:
            logger.warning("ingest job %s failed: %s", job_id, exc)
            await self._report_status(
                IngestStatus(job_id=job_id, collection=request.collection, state="failed", message=str(exc))
            )
        except (PublishError, EmbedderError) as exc:
            raise TransientError(f"ingest job {job_id}: {exc}") from exc

    async def _publish_batch(self, batch: ChunkBatch, message_id: str) -> None:
        await bus.publish(
            self.context.js, subjects.chunks(batch.collection), batch, source=self.context.source, event_id=message_id
        )

    async def _report_status(self, status: IngestStatus) -> None:
        await bus.publish(self.context.js, subjects.ingest_status(status.job_id), status, source=self.context.source)

    # Embed endpoint -------------------------------------------------------------

    async def _handle_embed(self, request: EmbedRequest) -> EmbedReply:
        assert self.embedder is not None
        if not request.texts:
            raise ApiFailure("bad_request", "texts is empty; send at least one text", field="$.texts")
        if len(request.texts) > MAX_EMBED_TEXTS:
            raise ApiFailure(
                "bad_request",
                f"{len(request.texts)} texts in one request; the maximum is {MAX_EMBED_TEXTS}, split the request",
                field="$.texts",
            )
        try:
            vectors = await embed_texts(self.embedder, request.texts)
        except EmbedderError as exc:
            logger.error("embedding failed: %s", exc)
            raise ApiFailure("unavailable", str(exc)) from exc
        return EmbedReply(model=self.embedder.name, dimension=self.embedder.dimension, vectors=vectors)


class _Heartbeat:
    """Send `in_progress` acks at most every HEARTBEAT_INTERVAL_S, so ack_wait never expires mid-job."""

    def __init__(self, msg: Msg) -> None:
        self.msg = msg
        self.last = asyncio.get_running_loop().time()

    async def __call__(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.last < HEARTBEAT_INTERVAL_S:
            return
        self.last = now
        try:
            await self.msg.in_progress()
        except Exception:  # noqa: BLE001 - a lost heartbeat only risks a redelivery, which is idempotent
            logger.warning("in-progress ack failed", exc_info=True)

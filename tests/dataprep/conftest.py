"""Fixtures for data prep: one loaded model per session, running services, a moto S3 server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from continuum.services.dataprep.embedders import OnnxEmbedder, SentenceTransformerEmbedder, load_tokenizer
from continuum.services.dataprep.onnx_export import ensure_int8_model
from continuum.services.dataprep.service import DataprepService
from continuum.services.dataprep.settings import DataprepSettings, S3Settings
from continuum.shared import bus, subjects
from continuum.shared.config import Settings
from continuum.shared.envelope import from_nats
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas.ingest import ChunkBatch, IngestRequest, IngestStatus


@pytest.fixture(scope="session")
def onnx_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_int8_model(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def embedder(onnx_model_path: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_model_path)


@pytest.fixture(scope="session")
def reference_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="session")
def tokenizer():  # noqa: ANN201 - tokenizers.Tokenizer
    return load_tokenizer()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over HTTP on a free loopback port."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(s3_endpoint: str) -> S3Settings:
    return S3Settings(endpoint_url=s3_endpoint, access_key_id="testing", secret_access_key="testing", page_size=2)


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    return root


@pytest.fixture
async def start_service(
    settings: Settings, js: bus.JetStreamContext, embedder: OnnxEmbedder
) -> AsyncIterator[Callable[[DataprepSettings], Awaitable[DataprepService]]]:
    """Start data prep instances, each with its own connection; all stop when the test ends."""
    started: list[tuple[DataprepService, bus.NATS]] = []

    async def start(dataprep_settings: DataprepSettings) -> DataprepService:
        nc = await bus.connect(settings, name="continuum-dataprep-test")
        context = ServiceContext(name="dataprep", settings=settings, nc=nc, js=bus.jetstream(nc, settings))
        service = DataprepService(dataprep_settings, embedder)
        await service.start(context)
        started.append((service, nc))
        return service

    yield start
    for service, nc in started:
        await service.stop()
        await nc.close()


class JobWatcher:
    """Collects status events and chunk batches of one collection through core subscriptions."""

    def __init__(self, nc: bus.NATS, js: bus.JetStreamContext, collection: str) -> None:
        self.nc = nc
        self.js = js
        self.collection = collection
        self.batches: list[ChunkBatch] = []
        self.statuses: dict[str, list[IngestStatus]] = {}
        self._finished: dict[str, asyncio.Event] = {}

    async def __aenter__(self) -> JobWatcher:
        self._subscriptions = [
            await self.nc.subscribe(subjects.chunks(self.collection), cb=self._handle_batch),
            await self.nc.subscribe(subjects.ALL_INGEST_STATUS, cb=self._handle_status),
        ]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()

    async def _handle_batch(self, msg) -> None:  # noqa: ANN001
        self.batches.append(from_nats(msg.data, msg.headers, ChunkBatch).data)

    async def _handle_status(self, msg) -> None:  # noqa: ANN001
        status = from_nats(msg.data, msg.headers, IngestStatus).data
        self.statuses.setdefault(status.job_id, []).append(status)
        if status.state in ("completed", "failed"):
            self._finished.setdefault(status.job_id, asyncio.Event()).set()

    async def run(self, request: IngestRequest, timeout: float = 60.0) -> IngestStatus:
        """Publish the request and return its final status."""
        assert request.job_id
        finished = self._finished.setdefault(request.job_id, asyncio.Event())
        await bus.publish(self.js, subjects.INGEST, request, source="tests", event_id=f"ingest-{request.job_id}")
        await asyncio.wait_for(finished.wait(), timeout)
        await self.nc.flush()
        await asyncio.sleep(0.05)
        return self.statuses[request.job_id][-1]

    def chunks(self, job_id: str | None = None) -> list:
        return [chunk for batch in self.batches if job_id in (None, batch.job_id) for chunk in batch.chunks]


@pytest.fixture
async def watcher_factory(nc: bus.NATS, js: bus.JetStreamContext):  # noqa: ANN201
    def create(collection: str) -> JobWatcher:
        return JobWatcher(nc, js, collection)

    return create

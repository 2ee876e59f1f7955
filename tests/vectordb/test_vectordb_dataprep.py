"""End to end with the data prep service: an ingest request becomes chunks that a text query finds."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from continuum.services.vectordb.service import VectorDbService
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.rpc import ApiCallError
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import CollectionRequest, CollectionStats, IngestRequest, QueryReply, QueryRequest
from continuum.shared.topology import provision
from vectordb_helpers import call, eventually

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("continuum.services.dataprep") is None, reason="the data prep service is not installed"
)

TEXT = """# Bread

Sourdough bread rises because wild yeast and lactic bacteria ferment the flour overnight.

# Messaging

A JetStream durable consumer remembers which messages each subscriber has acknowledged.
"""


@pytest.mark.timeout(180)
async def test_ingested_text_is_found_by_text_query(nats_server_factory: Any, tmp_path: Path) -> None:
    server = nats_server_factory()
    settings = Settings(nats=NatsSettings(url=server.url))
    nc = await bus.connect(settings, name="continuum-tests")
    js = bus.jetstream(nc)
    await provision(js, settings.jetstream)
    env = {
        **os.environ,
        "CONTINUUM_STATE_DIR": str(tmp_path / "state"),
        "CONTINUUM_DATAPREP_EMBEDDER": "sentence-transformers",
    }
    env.pop("CONTINUUM_CONFIG", None)
    dataprep = subprocess.Popen(
        [sys.executable, "-m", "continuum.services.dataprep", "--nats-url", server.url], env=env, cwd=tmp_path
    )
    service = VectorDbService(VectorDbSettings(uri=str(tmp_path / "lancedb"), batch_max_delay_s=0.1))
    await service.start(ServiceContext(name="vectordb", settings=settings, nc=nc, js=js, instance_id="e2e"))
    collection = "e2e-docs"
    try:
        await bus.publish(js, subjects.INGEST, IngestRequest(collection=collection, text=TEXT, job_id="e2e-job"), source="continuum/tests")

        async def stored() -> bool:
            try:
                stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
            except ApiCallError:
                return False
            return stats.info.rows >= 2

        await eventually(stored, timeout=120, what="chunks from data prep")
        reply = await call(nc, "query", QueryRequest(collection=collection, text="why does dough rise?", k=1), QueryReply)
    finally:
        await service.stop()
        dataprep.send_signal(signal.SIGTERM)
        await asyncio.to_thread(dataprep.wait, 30)
        await nc.close()

    assert len(reply.hits) == 1
    assert "Sourdough" in reply.hits[0].text

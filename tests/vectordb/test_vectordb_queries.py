"""Queries on `ctm.vector.*`: filters, full-text and hybrid modes, rejected filters, ANN recall, management."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from continuum.shared import bus
from continuum.shared.rpc import ApiCallError
from continuum.shared.schemas import (
    CollectionRequest,
    CollectionsReply,
    CollectionStats,
    DeleteDocumentReply,
    DeleteDocumentRequest,
    EmptyRequest,
    Filter,
    MaintainReply,
    OkReply,
    QueryReply,
    QueryRequest,
)
from vectordb_helpers import EMBED_MODEL, call, embed_texts, eventually, make_batch, publish_batch

pytestmark = pytest.mark.timeout(120)

DOCUMENTS = {
    "nats": (
        ["JetStream streams keep messages on disk for durable consumers.", "A queue group spreads requests over subscribers."],
        {"lang": "en", "year": 2023, "tags": ["messaging", "go"], "public": True},
        "NATS guide",
    ),
    "lance": (
        ["Lance files store vectors in columns for fast scans.", "An IVF index partitions vectors around centroids."],
        {"lang": "en", "year": 2024, "tags": ["storage"], "public": False},
        "O'Brien's Lance notes",
    ),
    "pain": (
        ["Le levain fait lever la pâte à pain pendant la nuit.", "La croûte dore dans un four très chaud."],
        {"lang": "fr", "year": 2021, "tags": ["cooking"], "public": True},
        "Pain maison",
    ),
}


@pytest.fixture
async def corpus(nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, embedding_model: Any, unique: str) -> str:
    collection = f"corpus-{unique}"
    for document_id, (texts, metadata, title) in DOCUMENTS.items():
        vectors = embed_texts(embedding_model, texts)
        await publish_batch(js, make_batch(collection, document_id, texts, vectors, metadata=metadata, title=title))

    async def loaded() -> bool:
        try:
            stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
        except ApiCallError:
            return False
        return stats.info.rows == 6

    await eventually(loaded, what="the corpus to load")
    return collection


async def query(nc: bus.NATS, request: QueryRequest) -> QueryReply:
    return await call(nc, "query", request, QueryReply)


async def test_filters_select_matching_chunks(nc: bus.NATS, corpus: str, embed_responder: None) -> None:
    cases = [
        ([Filter(field="metadata.lang", value="fr")], {"pain"}),
        ([Filter(field="metadata.year", op="gte", value=2023)], {"nats", "lance"}),
        ([Filter(field="metadata.public", value=False)], {"lance"}),
        ([Filter(field="metadata.tags", op="contains", value="go")], {"nats"}),
        ([Filter(field="document_id", op="in", value=["nats", "pain"])], {"nats", "pain"}),
        ([Filter(field="title", value="O'Brien's Lance notes")], {"lance"}),
        ([Filter(field="title", op="contains", value="guide")], {"nats"}),
        ([Filter(field="metadata.lang", value="en"), Filter(field="chunk_index", op="lt", value=1)], {"nats", "lance"}),
    ]
    for filters, expected in cases:
        reply = await query(nc, QueryRequest(collection=corpus, text="vectors and messages", k=10, filters=filters))
        assert {hit.document_id for hit in reply.hits} == expected, filters


async def test_fts_mode_finds_keyword(nc: bus.NATS, corpus: str) -> None:
    reply = await query(nc, QueryRequest(collection=corpus, text="centroids", mode="fts", k=5))

    assert [hit.text for hit in reply.hits] == ["An IVF index partitions vectors around centroids."]
    assert reply.hits[0].score > 0


async def test_hybrid_mode_fuses_both_rankings(nc: bus.NATS, corpus: str, embed_responder: None) -> None:
    reply = await query(nc, QueryRequest(collection=corpus, text="levain pain", mode="hybrid", k=3))

    assert reply.mode == "hybrid"
    assert reply.hits[0].document_id == "pain"
    assert reply.hits[0].score == pytest.approx(2 / 61, rel=1e-6)
    assert [hit.score for hit in reply.hits] == sorted((hit.score for hit in reply.hits), reverse=True)


async def test_hybrid_mode_applies_filters(nc: bus.NATS, corpus: str, embed_responder: None) -> None:
    filters = [Filter(field="metadata.lang", value="en")]
    reply = await query(nc, QueryRequest(collection=corpus, text="levain pain", mode="hybrid", k=5, filters=filters))

    assert reply.hits
    assert "pain" not in {hit.document_id for hit in reply.hits}


@pytest.mark.parametrize(
    "bad_filter",
    [
        {"field": "title = '' OR 1=1 --", "op": "eq", "value": "x"},
        {"field": "metadata.lang') OR true OR ('", "op": "eq", "value": "en"},
        {"field": "metadata", "op": "eq", "value": "x"},
        {"field": "chunk_index", "op": "gt", "value": "0 OR 1=1"},
        {"field": "document_id", "op": "in", "value": "nats') OR ('1'='1"},
        {"field": "heading_path", "op": "eq", "value": "Guide"},
    ],
)
async def test_filter_injection_is_rejected(nc: bus.NATS, corpus: str, bad_filter: dict[str, Any]) -> None:
    request = QueryRequest(collection=corpus, vector=[0.0] * 384, k=5, filters=[Filter(**bad_filter)])

    with pytest.raises(ApiCallError) as caught:
        await query(nc, request)

    assert caught.value.error.code == "bad_request"
    assert caught.value.error.field is not None
    assert caught.value.error.field.startswith("filters[0]")


async def test_quoted_value_stays_a_literal(nc: bus.NATS, corpus: str) -> None:
    injected = [Filter(field="document_id", value="nats' OR '1'='1")]
    reply = await query(nc, QueryRequest(collection=corpus, vector=[0.1] * 384, k=10, filters=injected))

    assert reply.hits == []


async def test_invalid_requests_get_clear_errors(nc: bus.NATS, corpus: str) -> None:
    cases = [
        (QueryRequest(collection=corpus, vector=[0.1] * 3), "vector", "3 dimensions"),
        (QueryRequest(collection=corpus, vector=[0.1] * 384, k=0), "k", "between 1 and"),
        (QueryRequest(collection=corpus, mode="fts", vector=[0.1] * 384), "text", "needs query text"),
        (QueryRequest(collection="bad.name", vector=[0.1] * 384), "collection", "invalid collection name"),
    ]
    for request, field, words in cases:
        with pytest.raises(ApiCallError) as caught:
            await query(nc, request)
        assert caught.value.error.code == "bad_request"
        assert caught.value.error.field == field
        assert words in caught.value.error.message

    with pytest.raises(ApiCallError) as missing:
        await query(nc, QueryRequest(collection="no-such-collection", vector=[0.1] * 384))
    assert missing.value.error.code == "not_found"


async def test_collections_stats_delete_and_drop(nc: bus.NATS, corpus: str) -> None:
    listed = await call(nc, "collections", EmptyRequest(), CollectionsReply)
    info = next(item for item in listed.collections if item.name == corpus)
    assert (info.rows, info.model, info.dimension, info.fts_indexed) == (6, EMBED_MODEL, 384, True)

    deleted = await call(nc, "delete_document", DeleteDocumentRequest(collection=corpus, document_id="pain"), DeleteDocumentReply)
    assert deleted.deleted == 2
    stats = await call(nc, "stats", CollectionRequest(collection=corpus), CollectionStats)
    assert (stats.info.rows, stats.documents) == (4, 2)

    await call(nc, "drop", CollectionRequest(collection=corpus), OkReply)
    listed = await call(nc, "collections", EmptyRequest(), CollectionsReply)
    assert corpus not in {item.name for item in listed.collections}


def clustered_vectors(count: int, dimension: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors around random cluster centres, with per-cluster spread, like topic clusters of text embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dimension))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, clusters, size=count)
    spread = rng.uniform(0.15, 0.35, size=clusters)[labels][:, None]
    vectors = centres[labels] + rng.normal(size=(count, dimension)) * spread / np.sqrt(dimension) * 4
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.timeout(180)
async def test_indexed_search_recall_matches_exact(
    nc: bus.NATS, js: bus.JetStreamContext, vectordb: Any, unique: str
) -> None:
    collection = f"recall-{unique}"
    vectors = clustered_vectors(4000, 64, clusters=40, seed=7)
    for start in range(0, len(vectors), 250):
        part = vectors[start : start + 250].tolist()
        batch = make_batch(collection, f"doc-{start}", [f"row {start + i}" for i in range(len(part))], part, model="synthetic")
        await publish_batch(js, batch)

    async def loaded() -> bool:
        try:
            return (await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)).info.rows == 4000
        except ApiCallError:
            return False

    await eventually(loaded, timeout=60, what="4000 rows")
    maintained = await call(nc, "maintain", CollectionRequest(collection=collection), MaintainReply, timeout=120)
    assert "vector_index" in maintained.actions
    stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
    vector_index = next(index for index in stats.indexes if index.columns == ["vector"])
    assert vector_index.unindexed_rows == 0

    rng = np.random.default_rng(11)
    queries = vectors[rng.choice(len(vectors), 50, replace=False)] + rng.normal(size=(50, 64)).astype(np.float32) * 0.05
    recalls = []
    for query_vector in queries:
        exact = set(np.argsort(-(vectors @ query_vector))[:10].tolist())
        reply = await query(nc, QueryRequest(collection=collection, vector=query_vector.tolist(), k=10))
        found = {int(hit.id.rsplit("-", 1)[1]) + int(hit.document_id.split("-")[1]) for hit in reply.hits}
        recalls.append(len(found & exact) / 10)

    assert float(np.mean(recalls)) >= 0.95

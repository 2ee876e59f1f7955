"""Vector, full-text and hybrid queries against a collection's table.

Text queries in `vector` and `hybrid` mode are embedded through `ctm.embed`,
and the reply's model must be the one the collection was built with.
Hybrid mode fuses the vector and full-text rankings with reciprocal rank
fusion: a hit's score is the sum over both lists of 1 / (rrf_k + rank).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from nats.aio.client import Client as NATS

from continuum.services.vectordb.errors import FilterError
from continuum.services.vectordb.filters import to_where
from continuum.services.vectordb.settings import VectorDbSettings
from continuum.services.vectordb.store import FTS_RESULT_COLUMNS, VECTOR_RESULT_COLUMNS, Store
from continuum.shared import rpc, subjects
from continuum.shared.rpc import ApiCallError, ApiFailure
from continuum.shared.schemas import EmbedReply, EmbedRequest, Hit, QueryReply, QueryRequest


class QueryEngine:
    def __init__(self, store: Store, nc: NATS, settings: VectorDbSettings) -> None:
        self.store = store
        self.nc = nc
        self.settings = settings

    async def query(self, request: QueryRequest) -> QueryReply:
        started = time.perf_counter()
        self._validate(request)
        try:
            where = to_where(request.filters)
        except FilterError as exc:
            raise ApiFailure("bad_request", str(exc), field=exc.field) from exc

        table = await self.store.table(request.collection)
        model, dimension = await self.store.model_of(table)

        if request.mode == "fts":
            hits = await self._fts(table, request.text or "", request.k, where)
        else:
            vector = request.vector if request.vector is not None else await self._embed(request.text or "", model, dimension)
            if len(vector) != dimension:
                raise ApiFailure(
                    "bad_request",
                    f"query vector has {len(vector)} dimensions, collection {request.collection!r} stores {dimension}",
                    field="vector",
                )
            if request.mode == "vector":
                hits = await self._vector(table, vector, request.k, where)
            else:
                candidates = max(request.k, self.settings.hybrid_candidates)
                by_vector = await self._vector(table, vector, candidates, where)
                by_text = await self._fts(table, request.text or "", candidates, where)
                hits = fuse([by_vector, by_text], request.k, self.settings.rrf_k)

        took_ms = (time.perf_counter() - started) * 1000.0
        return QueryReply(collection=request.collection, mode=request.mode, hits=hits, took_ms=took_ms)

    def _validate(self, request: QueryRequest) -> None:
        name_error = _name_error(request.collection)
        if name_error:
            raise ApiFailure("bad_request", name_error, field="collection")
        if not 1 <= request.k <= self.settings.max_k:
            raise ApiFailure("bad_request", f"k must be between 1 and {self.settings.max_k}, got {request.k}", field="k")
        if request.mode in ("fts", "hybrid") and not (request.text or "").strip():
            raise ApiFailure("bad_request", f"mode {request.mode!r} needs query text in `text`", field="text")
        if request.mode == "vector" and request.text is None and request.vector is None:
            raise ApiFailure("bad_request", "a vector query needs `text` or `vector`", field="text")
        if request.mode == "vector" and request.text is not None and request.vector is not None:
            raise ApiFailure("bad_request", "give either `text` or `vector`, not both", field="vector")
        if request.vector is not None and not all(math.isfinite(value) for value in request.vector):
            raise ApiFailure("bad_request", "query vector contains NaN or infinite values", field="vector")

    async def _embed(self, text: str, model: str, dimension: int) -> list[float]:
        try:
            reply = await rpc.call(
                self.nc, subjects.EMBED, EmbedRequest(texts=[text], kind="query"), EmbedReply, timeout=self.settings.embed_timeout_s
            )
        except ApiCallError as exc:
            raise ApiFailure("unavailable", f"embedding the query text failed: {exc.error.message}", field="text") from exc
        if (reply.model, reply.dimension) != (model, dimension):
            raise ApiFailure(
                "conflict",
                f"{subjects.EMBED} embeds with model {reply.model!r} ({reply.dimension} dimensions), but the collection "
                f"stores {model!r} ({dimension} dimensions); query with a vector from that model instead",
                field="text",
            )
        return reply.vectors[0]

    async def _vector(self, table: Any, vector: list[float], k: int, where: str | None) -> list[Hit]:
        query = (
            table.vector_search(vector)
            .column("vector")
            .distance_type("cosine")
            .nprobes(self.settings.nprobes)
            .refine_factor(self.settings.refine_factor)
            .ef(self.settings.ef)
            .select(VECTOR_RESULT_COLUMNS)
            .limit(k)
        )
        if where:
            query = query.where(where)
        rows = await _run(query)
        return [to_hit(row, 1.0 - float(row["_distance"])) for row in rows]

    async def _fts(self, table: Any, text: str, k: int, where: str | None) -> list[Hit]:
        query = table.query().nearest_to_text(text).select(FTS_RESULT_COLUMNS).limit(k)
        if where:
            query = query.where(where)
        rows = await _run(query)
        return [to_hit(row, float(row["_score"])) for row in rows]


async def _run(query: Any) -> list[dict[str, Any]]:
    try:
        return await query.to_list()
    except (ValueError, RuntimeError) as exc:
        # LanceDB reports invalid expressions and missing indexes as ValueError or RuntimeError.
        raise ApiFailure("bad_request", f"query failed: {exc}") from exc


def _name_error(collection: str) -> str | None:
    try:
        subjects.validate_name(collection, kind="collection name")
    except ValueError as exc:
        return str(exc)
    return None


def to_hit(row: dict[str, Any], score: float) -> Hit:
    metadata = row.get("metadata") or "{}"
    return Hit(
        id=row["id"],
        score=score,
        text=row.get("text") or "",
        document_id=row.get("document_id") or "",
        source_uri=row.get("source_uri") or "",
        title=row.get("title") or "",
        heading_path=list(row.get("heading_path") or []),
        chunk_index=row.get("chunk_index") or 0,
        metadata=json.loads(metadata) if isinstance(metadata, str | bytes) else dict(metadata),
    )


def fuse(rankings: list[list[Hit]], k: int, rrf_k: int) -> list[Hit]:
    """Combine rankings by reciprocal rank fusion; the fused score replaces each hit's score."""
    scores: dict[str, float] = {}
    hits: dict[str, Hit] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (rrf_k + rank)
            hits.setdefault(hit.id, hit)
    ordered = sorted(scores, key=lambda hit_id: scores[hit_id], reverse=True)[:k]
    fused = []
    for hit_id in ordered:
        hit = hits[hit_id]
        hit.score = scores[hit_id]
        fused.append(hit)
    return fused

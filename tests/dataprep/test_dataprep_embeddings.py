"""The embedders: determinism, similarity ordering, int8 agreement and the HTTP embedder."""

from __future__ import annotations

import numpy as np
import pytest
from aiohttp import web

from continuum.services.dataprep.embedders import OpenAIEmbedder
from continuum.services.dataprep.errors import EmbedderError
from continuum.services.dataprep.onnx_export import MIN_MEAN_COSINE, VERIFICATION_TEXTS


def test_same_text_gives_same_vector(embedder):  # noqa: ANN001
    first = embedder.encode(["The cat sits on the mat.", "Another text"])
    second = embedder.encode(["The cat sits on the mat."])
    assert np.array_equal(first[0], second[0])
    assert np.isclose(np.linalg.norm(first[0]), 1.0, atol=1e-5)


def test_similar_sentences_score_higher(embedder):  # noqa: ANN001
    anchor, similar, unrelated = embedder.encode(
        ["How do I reset my password?", "I forgot my password and need to change it.", "The recipe needs two eggs."]
    )
    assert float(anchor @ similar) > float(anchor @ unrelated) + 0.2


def test_int8_model_agrees_with_reference(embedder, reference_embedder):  # noqa: ANN001
    texts = VERIFICATION_TEXTS[:24] + ["A longer passage. " * 60]
    cosines = (embedder.encode(texts) * reference_embedder.encode(texts)).sum(axis=1)
    assert cosines.mean() >= MIN_MEAN_COSINE
    assert cosines.min() >= 0.97


async def test_openai_embedder_calls_http_endpoint(unused_tcp_port):  # noqa: ANN001
    seen: list[dict] = []

    async def embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"auth": request.headers.get("Authorization"), **body})
        data = [{"index": i, "embedding": [float(len(text)), 0.0, 1.0]} for i, text in enumerate(body["input"])]
        return web.json_response({"data": list(reversed(data)), "model": body["model"]})

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        embedder = OpenAIEmbedder(base_url=f"http://127.0.0.1:{unused_tcp_port}/v1", model="m", api_key="k", batch_size=2)
        vectors = await embedder.embed_async(["a", "bbb", "cc"])
        failing = OpenAIEmbedder(base_url=f"http://127.0.0.1:{unused_tcp_port}/missing", model="m")
        with pytest.raises(EmbedderError, match="HTTP 404"):
            await failing.embed_async(["a"])
    finally:
        await runner.cleanup()
    assert len(seen) == 2
    assert seen[0]["auth"] == "Bearer k"
    assert embedder.dimension == 3
    assert vectors[0][0] < vectors[1][0]
    assert np.isclose(np.linalg.norm(vectors[2]), 1.0)

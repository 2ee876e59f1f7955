"""Data prep settings: the `[dataprep]` TOML table and `CONTINUUM_DATAPREP_*` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from continuum.shared.config import load_section

EmbedderKind = Literal["onnx", "sentence-transformers", "openai"]


class S3Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Connection to an S3-compatible store; empty values fall back to the AWS defaults chain."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = None
    secret_access_key: str | None = None
    page_size: int = 1000


class OpenAISettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An OpenAI-compatible `/v1/embeddings` endpoint."""

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "text-embedding-3-small"
    api_key: str | None = None
    dimension: int = 0
    timeout_s: float = 30.0
    # Tokenizer used to count chunk sizes; `tokenizer.json` of a Hugging Face
    # tokenizer. Empty: the bundled all-MiniLM-L6-v2 tokenizer.
    tokenizer_file: str = ""
    max_tokens: int = 8191


class DataprepSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Data prep settings: the roots documents are read from, the embedder and job limits."""

    # Local paths in requests must resolve inside one of these directories.
    # Empty: the current working directory only.
    roots: list[str] = msgspec.field(default_factory=list)
    embedder: EmbedderKind = "onnx"
    # Directory for the exported ONNX model; empty: `<state_dir>/models`.
    model_cache_dir: str = ""
    batch_size: int = 32
    threads: int = 0
    # A document above this size fails with an error instead of being read.
    max_document_bytes: int = 64 * 1024 * 1024
    # Chunks per ChunkBatch message; keep batches under the NATS max payload.
    chunks_per_batch: int = 64
    # Ingest jobs one process runs at the same time.
    concurrency: int = 1
    s3: S3Settings = msgspec.field(default_factory=S3Settings)
    openai: OpenAISettings = msgspec.field(default_factory=OpenAISettings)

    def resolved_roots(self) -> list[Path]:
        chosen = self.roots or ["."]
        return [Path(root).expanduser().resolve() for root in chosen]


def load_dataprep_settings(path: str | None = None) -> DataprepSettings:
    return load_section("dataprep", DataprepSettings, path)

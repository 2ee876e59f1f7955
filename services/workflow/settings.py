"""Workflow settings: `[workflow]` in the TOML file or `CONTINUUM_WORKFLOW_*` variables."""

from __future__ import annotations

import os

import msgspec


class WorkflowSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Per-step timeouts in seconds, retries for transient errors, and the optional LLM endpoint.

    `llm_url` is the base URL of an OpenAI-compatible API (for example
    `http://127.0.0.1:8000/v1`); when empty, answers are extractive. It also
    reads `CONTINUUM_LLM_URL`, `CONTINUUM_LLM_MODEL` and `CONTINUUM_LLM_API_KEY`.
    """

    guard_timeout_s: float = 2.0
    query_timeout_s: float = 10.0
    compose_timeout_s: float = 60.0
    retries: int = 2
    retry_backoff_s: float = 0.2
    query_mode: str = "hybrid"
    candidates_per_answer: int = 3
    max_quote_chars: int = 360
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""

    def __post_init__(self) -> None:
        self.llm_url = self.llm_url or os.environ.get("CONTINUUM_LLM_URL", "")
        self.llm_model = self.llm_model or os.environ.get("CONTINUUM_LLM_MODEL", "")
        self.llm_api_key = self.llm_api_key or os.environ.get("CONTINUUM_LLM_API_KEY", "")

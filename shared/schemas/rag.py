"""Retrieval-augmented answering on `ctm.rag.ask`."""

from __future__ import annotations

import msgspec

from continuum.shared.schemas._base import Event
from continuum.shared.schemas.guard import Finding


class AskRequest(Event, kw_only=True):
    CE_TYPE = "continuum.rag.ask.v1"

    question: str
    collection: str
    k: int = 5
    policy: str = "default"


class Citation(msgspec.Struct, kw_only=True):
    source_uri: str
    chunk_id: str
    title: str = ""
    heading_path: list[str] = msgspec.field(default_factory=list)
    score: float = 0.0


class AskReply(Event, kw_only=True):
    CE_TYPE = "continuum.rag.answer.v1"

    answer: str
    citations: list[Citation] = msgspec.field(default_factory=list)
    findings: list[Finding] = msgspec.field(default_factory=list)
    blocked: bool = False
    blocked_stage: str | None = None
    trace_id: str = ""
    took_ms: float = 0.0

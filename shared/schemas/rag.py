"""Retrieval-augmented answering on `ctm.rag.ask`."""

from __future__ import annotations

from typing import Literal

import msgspec

from continuum.shared.schemas._base import Event
from continuum.shared.schemas.guard import Finding, Verdict
from continuum.shared.schemas.vector import QueryMode


class AskRequest(Event, kw_only=True):
    """A question about a collection; `mode` is the retrieval mode of the vector query."""

    CE_TYPE = "continuum.rag.ask.v1"

    question: str
    collection: str
    k: int = 5
    policy: str = "default"
    mode: QueryMode | None = None


class Citation(msgspec.Struct, kw_only=True):
    """A cited passage; `number` is its marker in the answer text (`[1]`)."""

    number: int
    source_uri: str
    chunk_id: str
    title: str = ""
    heading_path: list[str] = msgspec.field(default_factory=list)
    score: float = 0.0


class GuardStep(msgspec.Struct, kw_only=True):
    """The guardrail verdict at one stage; `target` names the passage for the retrieval stage."""

    stage: Literal["input", "retrieval", "output"]
    verdict: Verdict
    findings: list[Finding] = msgspec.field(default_factory=list)
    target: str = ""


class AskReply(Event, kw_only=True):
    """The answer with its citations, every guardrail verdict, and the trace id of the request.

    When a guardrail blocks the question or the answer, `blocked` is true,
    `blocked_stage` names the stage and `answer` explains the block.
    """

    CE_TYPE = "continuum.rag.answer.v1"

    answer: str
    citations: list[Citation] = msgspec.field(default_factory=list)
    findings: list[Finding] = msgspec.field(default_factory=list)
    guard: list[GuardStep] = msgspec.field(default_factory=list)
    blocked: bool = False
    blocked_stage: str | None = None
    question: str = ""
    composer: Literal["extractive", "llm", "none"] = "extractive"
    trace_id: str = ""
    took_ms: float = 0.0

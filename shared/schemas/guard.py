"""Guardrail checks on `ctm.guard.check` and guarded pipelines on `ctm.guard.in.<topic>`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from continuum.shared.schemas._base import Event, utcnow

Stage = Literal["input", "retrieval", "output"]
Verdict = Literal["allow", "redact", "block"]


class GuardCheckRequest(Event, kw_only=True):
    CE_TYPE = "continuum.guard.check.v1"

    text: str
    stage: Stage = "input"
    policy: str = "default"


class Finding(msgspec.Struct, kw_only=True):
    """A detector hit: `start`/`end` are character offsets into the checked text."""

    detector: str
    type: str
    start: int
    end: int
    score: float = 1.0
    reason: str = ""
    action: Verdict = "block"


class GuardCheckReply(Event, kw_only=True):
    CE_TYPE = "continuum.guard.check.reply.v1"

    verdict: Verdict
    findings: list[Finding] = msgspec.field(default_factory=list)
    redacted_text: str | None = None
    policy: str = "default"
    stage: Stage = "input"
    took_ms: float = 0.0


class GuardAudit(Event, kw_only=True):
    """Audit record of a block, on `ctm.guard.audit.<topic>`; it names findings, never the text."""

    CE_TYPE = "continuum.guard.audit.v1"

    topic: str
    verdict: Verdict
    policy: str
    stage: Stage
    findings: list[Finding]
    message_id: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)


class GuardedPayload(Event, kw_only=True):
    """Message that stream mode republishes to `ctm.guard.blocked.<topic>`: the findings beside the original."""

    CE_TYPE = "continuum.guard.blocked.v1"

    topic: str
    verdict: Verdict
    findings: list[Finding]
    original: Any = None


class GuardPoliciesRequest(Event, kw_only=True):
    """List the policies in force on `ctm.guard.policies`; `name` narrows the list to one."""

    CE_TYPE = "continuum.guard.policies.v1"

    name: str | None = None


class GuardPolicyInfo(msgspec.Struct, kw_only=True):
    """One policy in force, and the last rejected update of its key, if any."""

    name: str
    description: str = ""
    source: str = ""
    revision: int = 0
    detectors: dict[str, list[Stage]] = msgspec.field(default_factory=dict)
    rejected_revision: int | None = None
    rejected_reason: str | None = None


class GuardPoliciesReply(Event, kw_only=True):
    CE_TYPE = "continuum.guard.policies.reply.v1"

    policies: list[GuardPolicyInfo] = msgspec.field(default_factory=list)

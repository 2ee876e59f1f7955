"""Running a policy's detectors over a text and turning their findings into a verdict.

The verdict is the strongest action among the findings that reach their
detector's threshold: `block` over `redact` over `allow`. Redaction replaces
each redacted span with its detector's placeholder, left to right; a span that
overlaps an earlier one merges into it. The check fails closed: a detector
that raises adds a `detector_error` finding with action `block`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import msgspec

from continuum.services.guardrails.detectors import Detector
from continuum.services.guardrails.policy import Policy
from continuum.shared.schemas.guard import Finding, Stage, Verdict

logger = logging.getLogger(__name__)

_RANK: dict[str, int] = {"allow": 0, "redact": 1, "block": 2}


@dataclass
class CheckResult:
    """The outcome of one check; `redacted_text` is None when the verdict is `block`."""

    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    redacted_text: str | None = None
    took_ms: float = 0.0


def check(policy: Policy, text: str, stage: Stage) -> CheckResult:
    """Run every detector of `policy` enabled at `stage` over `text`."""
    started = time.perf_counter()
    findings: list[Finding] = []
    placeholders: dict[int, Detector] = {}

    for active in policy.stages.get(stage, ()):
        detector = active.detector
        try:
            found = detector.scan(text)
        except Exception as exc:  # noqa: BLE001 - fail closed: any detector error blocks the text
            logger.error("detector %s failed; blocking the text", detector.name, exc_info=True, extra={"policy": policy.name})
            findings.append(_error_finding(detector.name, exc))
            continue
        for finding in found:
            if finding.score < active.threshold:
                continue
            action = policy.action_for(finding.detector, finding.type)
            finding = msgspec.structs.replace(finding, action=action)
            placeholders[id(finding)] = detector
            findings.append(finding)

    verdict: Verdict = "allow"
    for finding in findings:
        if _RANK[finding.action] > _RANK[verdict]:
            verdict = finding.action

    redacted: str | None = None
    if verdict == "allow":
        redacted = text
    elif verdict == "redact":
        redacted = redact(text, [(finding, placeholders[id(finding)]) for finding in findings if finding.action == "redact"])
    findings.sort(key=lambda finding: (finding.start, finding.end))
    return CheckResult(verdict, findings, redacted, (time.perf_counter() - started) * 1000.0)


def redact(text: str, spans: list[tuple[Finding, Detector]]) -> str:
    """Replace each finding's span with its detector's placeholder; overlapping spans merge into the first."""
    pieces: list[str] = []
    cursor = 0
    for finding, detector in sorted(spans, key=lambda item: (item[0].start, -item[0].end)):
        if finding.end <= cursor:
            continue
        start = max(finding.start, cursor)
        if start == cursor and pieces and finding.start < cursor:
            # Overlaps the previous span: extend it without a second placeholder.
            cursor = finding.end
            continue
        pieces.append(text[cursor:start])
        pieces.append(detector.placeholder(finding))
        cursor = finding.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _error_finding(detector: str, exc: Exception) -> Finding:
    return Finding(
        detector=detector,
        type="detector_error",
        start=0,
        end=0,
        score=1.0,
        reason=f"detector {detector} failed ({type(exc).__name__}: {str(exc)[:200]}); blocked because checks fail closed",
        action="block",
    )

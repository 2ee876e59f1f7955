"""Denylisted terms and topics, matched as whole words without regard to case."""

from __future__ import annotations

import re
from typing import ClassVar

from continuum.services.guardrails.detectors.base import DetectorOptions
from continuum.shared.schemas.guard import Finding


class DenylistOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """`terms` report as type `term`; each topic lists the phrases that reveal it and reports as the topic name."""

    terms: list[str] = []
    topics: dict[str, list[str]] = {}


def _phrase_pattern(phrases: list[str]) -> re.Pattern[str] | None:
    cleaned = sorted({phrase.strip() for phrase in phrases if phrase.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    # Whitespace inside a phrase matches any run of whitespace, so line breaks do not hide it.
    alternatives = "|".join(r"\s+".join(re.escape(word) for word in phrase.split()) for phrase in cleaned)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


class DenylistDetector:
    """Reports each denylisted term or topic phrase; redaction writes `[TERM]` or the topic in capitals."""

    name: ClassVar[str] = "denylist"

    def __init__(self, options: DenylistOptions | None = None) -> None:
        self.options = options or DenylistOptions()
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        terms = _phrase_pattern(self.options.terms)
        if terms is not None:
            self._rules.append(("term", terms))
        for topic, phrases in self.options.topics.items():
            pattern = _phrase_pattern(phrases)
            if pattern is not None:
                self._rules.append((topic, pattern))

    def scan(self, text: str) -> list[Finding]:
        findings = []
        for kind, pattern in self._rules:
            for match in pattern.finditer(text):
                reason = "denylisted term" if kind == "term" else f"denylisted topic {kind!r}"
                findings.append(
                    Finding(detector=self.name, type=kind, start=match.start(), end=match.end(), reason=reason)
                )
        findings.sort(key=lambda finding: finding.start)
        return findings

    def placeholder(self, finding: Finding) -> str:
        return f"[{finding.type.upper()}]"

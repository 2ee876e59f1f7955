"""Secrets: cloud provider keys, GitHub and Slack tokens, private key blocks, JWTs, high-entropy assignments.

The token formats are the ones the providers document and that detect-secrets
1.5 ships as plugins (AWS, GitHub, Slack, Stripe, private keys, JWT, keyword
plus entropy). The rules are re-implemented here instead of calling
detect-secrets for two reasons. Its `scan_line` runs every plugin and filter
on each line, which took tens of milliseconds per 2 KB text against well under
one for these rules (bench/bench_guardrails.py measures both). And it reports lines,
while redaction needs character spans.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import ClassVar

from continuum.services.guardrails.detectors.base import DetectorOptions, shannon_entropy, typed_placeholder
from continuum.shared.schemas.guard import Finding


class SecretsOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """Entropy thresholds, in bits per character, for values assigned to secret-looking names."""

    base64_entropy: float = 3.5
    hex_entropy: float = 3.0
    min_assignment_length: int = 16


# (type, pattern, reason); the span of group 1 is reported when the pattern has one, else the whole match.
_TOKEN_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("aws_access_key", re.compile(r"((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})(?![A-Z0-9])"), "AWS access key id"),
    (
        "aws_secret_key",
        re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,20}?[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        "AWS secret access key",
    ),
    ("gcp_api_key", re.compile(r"(AIza[0-9A-Za-z_-]{35})(?![\w-])"), "Google Cloud API key"),
    (
        "azure_storage_key",
        re.compile(r"AccountKey=([A-Za-z0-9+/]{86}==)"),
        "Azure storage account key",
    ),
    (
        "github_token",
        re.compile(r"((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})(?![\w])"),
        "GitHub token",
    ),
    ("slack_token", re.compile(r"(xox[abposr]-(?:\d+-)+[A-Za-z0-9-]{10,})(?![\w-])"), "Slack token"),
    (
        "slack_webhook",
        re.compile(r"(https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+)"),
        "Slack incoming webhook URL",
    ),
    ("stripe_key", re.compile(r"((?:sk|rk)_live_[0-9A-Za-z]{24,99})(?![\w])"), "Stripe live secret key"),
    (
        "private_key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)"
        ),
        "private key block",
    ),
)
_JWT = re.compile(r"(eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)(?![\w-])")
# A name containing a secret-like word, then `=`, `:`, `:=` or `=>`, then the value (group 1). It runs
# on the lower-cased text and starts at the keyword rather than at the start of the name, so that re
# can skip ahead to a keyword's first letter.
_ASSIGNMENT = re.compile(
    r"(?:secret|passw(?:or)?d|passwd|pwd|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credentials?|private[_-]?key)"
    r"[\w.-]*[\"']?\s*(?::=|=>|[:=])\s*[\"']?([A-Za-z0-9+/=_\-.~]{8,})"
)
_HEX = re.compile(r"[0-9a-fA-F]+")


def _jwt_header_valid(token: str) -> bool:
    header = token.split(".", 1)[0]
    padded = header + "=" * (-len(header) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


class SecretsDetector:
    """Credential findings; redaction writes the type, such as `[GITHUB_TOKEN]`, so the value never leaves."""

    name: ClassVar[str] = "secrets"

    def __init__(self, options: SecretsOptions | None = None) -> None:
        self.options = options or SecretsOptions()

    def scan(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        for kind, pattern, reason in _TOKEN_RULES:
            for match in pattern.finditer(text):
                group = 1 if pattern.groups else 0
                if _inside_word(text, match.start(group)):
                    continue
                findings.append(self._finding(kind, match.start(group), match.end(group), reason))

        if "eyJ" in text:
            for match in _JWT.finditer(text):
                if not _inside_word(text, match.start(1)) and _jwt_header_valid(match.group(1)):
                    findings.append(self._finding("jwt", match.start(1), match.end(1), "JSON Web Token"))

        lowered = text.lower()
        # lower() keeps offsets unless a non-ASCII character changes length, which is rare.
        searched = lowered if len(lowered) == len(text) else text
        for match in _ASSIGNMENT.finditer(searched):
            finding = self._assignment(text, match)
            if finding is not None:
                findings.append(finding)
        return _drop_overlaps(findings)

    def placeholder(self, finding: Finding) -> str:
        return typed_placeholder(finding)

    def _assignment(self, text: str, match: re.Match[str]) -> Finding | None:
        value = text[match.start(1) : match.end(1)].rstrip(".")
        if len(value) < self.options.min_assignment_length:
            return None
        entropy = shannon_entropy(value)
        limit = self.options.hex_entropy if _HEX.fullmatch(value) else self.options.base64_entropy
        if entropy < limit:
            return None
        start = match.start(1)
        score = min(1.0, 0.5 + (entropy - limit) / 2)
        return self._finding(
            "high_entropy_secret",
            start,
            start + len(value),
            f"high-entropy value ({entropy:.1f} bits per character) assigned to a secret-like name",
            score=score,
        )

    def _finding(self, kind: str, start: int, end: int, reason: str, *, score: float = 1.0) -> Finding:
        return Finding(detector=self.name, type=kind, start=start, end=end, reason=reason, score=score)


def _inside_word(text: str, start: int) -> bool:
    """Return whether a token starting at `start` continues a longer word, so it is not a token of its own."""
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_-")


def _drop_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the first finding of each overlapping group, in the order the rules ran (specific rules first)."""
    kept: list[Finding] = []
    for finding in findings:
        if any(finding.start < other.end and other.start < finding.end for other in kept):
            continue
        kept.append(finding)
    kept.sort(key=lambda finding: finding.start)
    return kept

"""The detector Protocol and the helpers every detector shares.

A detector scans one text and returns findings with character spans. It
never decides the action: the policy maps each finding type to `allow`,
`redact` or `block`. Each detector has an options Struct that the policy
validates (unknown options are rejected), and `placeholder()` returns the
text that replaces a redacted span.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import ClassVar, Protocol

import msgspec

from continuum.shared.schemas.guard import Finding


class DetectorOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Options common to every detector in a policy."""


class Detector(Protocol):
    """Scans a text and reports findings; must be safe to share across concurrent checks."""

    name: ClassVar[str]

    def scan(self, text: str) -> list[Finding]:
        """Return the findings in `text`, with `start`/`end` as character offsets."""

    def placeholder(self, finding: Finding) -> str:
        """Return the text that replaces the span of `finding` when it is redacted."""


def typed_placeholder(finding: Finding) -> str:
    """`[EMAIL]`, `[CARD]`, ...: the finding type in capitals between brackets."""
    return f"[{finding.type.upper()}]"


def shannon_entropy(value: str) -> float:
    """Shannon entropy of `value` in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    length = len(value)
    return -sum(count / length * math.log2(count / length) for count in counts.values())

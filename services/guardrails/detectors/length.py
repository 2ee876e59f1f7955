"""Maximum text length, in characters."""

from __future__ import annotations

from typing import ClassVar

from continuum.services.guardrails.detectors.base import DetectorOptions
from continuum.shared.schemas.guard import Finding


class LengthOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """`max_chars`: the longest text accepted, in characters (Python `len`)."""

    max_chars: int = 32_000

    def __post_init__(self) -> None:
        if self.max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {self.max_chars}")


class LengthDetector:
    """Reports the part of a text beyond `max_chars`; redaction truncates it."""

    name: ClassVar[str] = "length"

    def __init__(self, options: LengthOptions | None = None) -> None:
        self.options = options or LengthOptions()

    def scan(self, text: str) -> list[Finding]:
        limit = self.options.max_chars
        if len(text) <= limit:
            return []
        return [
            Finding(
                detector=self.name,
                type="max_length",
                start=limit,
                end=len(text),
                reason=f"text has {len(text)} characters, the maximum is {limit}",
            )
        ]

    def placeholder(self, finding: Finding) -> str:
        return ""

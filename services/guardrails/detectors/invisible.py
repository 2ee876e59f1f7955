"""Invisible and control characters: zero-width, bidirectional controls, Unicode tags, C0/C1 controls.

Unicode tag characters (U+E0000-U+E007F) mirror ASCII and are invisible in
most renderers, so they can smuggle instructions past a human reviewer.
`reveal_tags` decodes them so that the injection detector reads the hidden text.
"""

from __future__ import annotations

import msgspec
import re
import unicodedata
from typing import ClassVar, Literal

from continuum.services.guardrails.detectors.base import DetectorOptions
from continuum.shared.schemas.guard import Finding

InvisibleType = Literal["zero_width", "bidi_control", "tag_character", "control_character"]

_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad"
_BIDI = "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 controls except tab, line feed and carriage return; DEL; C1 controls.
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"

_RUNS: tuple[tuple[InvisibleType, re.Pattern[str]], ...] = (
    ("zero_width", re.compile(f"[{_ZERO_WIDTH}]+")),
    ("bidi_control", re.compile(f"[{_BIDI}]+")),
    ("tag_character", re.compile("[\U000e0000-\U000e007f]+")),
    ("control_character", re.compile(f"[{_CONTROL}]+")),
)
INVISIBLE_CHARACTER = re.compile(f"[{_ZERO_WIDTH}{_BIDI}{_CONTROL}\U000e0000-\U000e007f]")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")


class InvisibleOptions(DetectorOptions, kw_only=True, forbid_unknown_fields=True):
    """Kinds of invisible character to report."""

    types: list[InvisibleType] = msgspec.field(
        default_factory=lambda: ["zero_width", "bidi_control", "tag_character", "control_character"]
    )


def reveal_tags(text: str) -> str:
    """Replace runs of Unicode tag characters with the ASCII they encode."""
    return _TAGS.sub(lambda match: "".join(chr(ord(char) - 0xE0000) for char in match.group()), text)


def normalize(text: str) -> str:
    """Fold `text` for matching: tags revealed, other invisibles dropped, NFKC, lower case, single spaces."""
    if INVISIBLE_CHARACTER.search(text):
        text = INVISIBLE_CHARACTER.sub("", reveal_tags(text))
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return " ".join(text.lower().split())


class InvisibleDetector:
    """Reports each run of invisible characters; redaction removes the run."""

    name: ClassVar[str] = "invisible"

    def __init__(self, options: InvisibleOptions | None = None) -> None:
        self.options = options or InvisibleOptions()
        self._rules = [(kind, pattern) for kind, pattern in _RUNS if kind in self.options.types]

    def scan(self, text: str) -> list[Finding]:
        if text.isascii() and not INVISIBLE_CHARACTER.search(text):
            return []
        findings = []
        for kind, pattern in self._rules:
            for match in pattern.finditer(text):
                codes = ", ".join(f"U+{ord(char):04X}" for char in dict.fromkeys(match.group()[:8]))
                findings.append(
                    Finding(
                        detector=self.name,
                        type=kind,
                        start=match.start(),
                        end=match.end(),
                        reason=f"{len(match.group())} invisible character(s): {codes}",
                    )
                )
        findings.sort(key=lambda finding: finding.start)
        return findings

    def placeholder(self, finding: Finding) -> str:
        return ""

"""Unicode normalisation, whitespace and boilerplate cleanup, and duplicate removal."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter

from continuum.services.dataprep.documents import Block, BlockSpan, CleanDocument

# Zero-width characters, the soft hyphen and the byte order mark carry no text.
_INVISIBLE = re.compile("[\u00ad\u200b\u200c\u200d\u2060\ufeff]")
# C0/C1 control characters except tab and newline.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]+")
_BLANK_LINES = re.compile(r"\n{2,}")
_PAGE_NUMBER = re.compile(r"^(page\s+)?\d{1,4}(\s*(of|/)\s*\d{1,4})?$", re.IGNORECASE)
_COPYRIGHT = re.compile(r"^(©|\(c\)|copyright)\b.{0,120}\ball rights reserved\.?$", re.IGNORECASE)

PARAGRAPH_SEPARATOR = "\n\n"


def normalize_text(text: str, *, keep_layout: bool = False) -> str:
    """Apply NFKC, drop invisible and control characters, and collapse whitespace.

    `keep_layout` keeps indentation and runs of spaces (code blocks).
    """
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub("", text)
    if keep_layout:
        lines = [line.rstrip() for line in text.split("\n")]
    else:
        lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip("\n")


def is_boilerplate(text: str) -> bool:
    """Page numbers and copyright footers, which add noise to every chunk they land in."""
    return bool(_PAGE_NUMBER.match(text) or _COPYRIGHT.match(text))


def remove_repeated_lines(pages: list[str], *, min_pages: int = 3, share: float = 0.6) -> list[str]:
    """Drop lines that repeat on most pages (running headers and footers of a PDF)."""
    if len(pages) < min_pages:
        return pages
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({line.strip() for line in page.split("\n") if line.strip()})
    repeated = {line for line, count in counts.items() if count >= share * len(pages)}
    if not repeated:
        return pages
    return ["\n".join(line for line in page.split("\n") if line.strip() not in repeated) for page in pages]


def clean_document(uri: str, title: str, blocks: list[Block], metadata: dict | None = None) -> CleanDocument:
    """Normalise blocks, drop empty, boilerplate and repeated paragraphs, and join them into one text.

    Blocks are joined with a blank line; each span records where its block
    sits in the joined text, so chunk offsets index the cleaned text.
    """
    seen: set[bytes] = set()
    spans: list[BlockSpan] = []
    parts: list[str] = []
    position = 0
    for block in blocks:
        text = normalize_text(block.text, keep_layout=block.kind == "code")
        if not text or (block.kind == "paragraph" and is_boilerplate(text)):
            continue
        if block.kind != "heading":
            digest = hashlib.sha1(text.encode("utf-8")).digest()
            if digest in seen:
                continue
            seen.add(digest)
        if parts:
            position += len(PARAGRAPH_SEPARATOR)
        spans.append(BlockSpan(Block(block.kind, text, block.level), position, position + len(text)))
        parts.append(text)
        position += len(text)
    return CleanDocument(
        uri=uri,
        title=normalize_text(title),
        text=PARAGRAPH_SEPARATOR.join(parts),
        spans=spans,
        metadata=dict(metadata or {}),
    )

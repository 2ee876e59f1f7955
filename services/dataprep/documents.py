"""The document model that flows through data prep: raw bytes, parsed blocks, cleaned text."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import IO, Any, Literal

BlockKind = Literal["heading", "paragraph", "code"]


@dataclass
class Block:
    """One structural unit of a document; `level` is 1-6 for headings, 0 otherwise."""

    kind: BlockKind
    text: str
    level: int = 0


@dataclass
class RawDocument:
    """A document as read from its source, before parsing.

    `body` is either the bytes or a seekable binary file (a spooled temporary
    file for large S3 objects), so a large object never has to sit in memory
    twice. `name` is the file name used to detect the format.
    """

    uri: str
    name: str
    body: bytes | IO[bytes]
    title: str = ""
    content_type: str = ""
    # Blocks already known (inline text and pydoc topics skip parsing by format).
    format_hint: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def open(self) -> IO[bytes]:
        if isinstance(self.body, bytes):
            return io.BytesIO(self.body)
        self.body.seek(0)
        return self.body

    def read(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        self.body.seek(0)
        return self.body.read()

    def close(self) -> None:
        if not isinstance(self.body, bytes):
            self.body.close()


@dataclass
class BlockSpan:
    """A block placed in the cleaned text: `text[start:end]` is the block's text."""

    block: Block
    start: int
    end: int


@dataclass
class CleanDocument:
    """A parsed and cleaned document; `checksum` is the SHA-256 of `text`."""

    uri: str
    title: str
    text: str
    spans: list[BlockSpan]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def document_id(collection: str, uri: str) -> str:
    """Deterministic id of a document in a collection, stable across content changes."""
    return hashlib.sha256(f"{collection}\n{uri}".encode()).hexdigest()[:32]


def chunk_id(collection: str, uri: str, checksum: str, index: int) -> str:
    """Deterministic chunk id: the same document text always yields the same ids."""
    return hashlib.sha256(f"{collection}\n{uri}\n{checksum}\n{index}".encode()).hexdigest()[:32]

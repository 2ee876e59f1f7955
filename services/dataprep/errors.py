"""Exceptions raised by data prep.

    DataprepError
    ├── DocumentError          one document failed; the job goes on without it
    │   ├── SourceError        the document could not be read (missing, outside the roots, S3 failure)
    │   └── ParseError         the bytes are not a readable document of the detected format
    ├── RequestError           the ingest request itself is invalid (unknown scheme, bad options)
    └── EmbedderError          the embedding model failed to load or to embed
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError


class DataprepError(ContinuumError):
    """Root of every exception that data prep raises on purpose."""


class DocumentError(DataprepError):
    """A failure confined to one document; `document` is its URI."""

    def __init__(self, message: str, *, document: str) -> None:
        super().__init__(message)
        self.document = document


class SourceError(DocumentError):
    """A document that could not be read from its source."""


class ParseError(DocumentError):
    """Bytes that are not a readable document of the detected format."""


class RequestError(DataprepError):
    """An ingest request that cannot run at all, such as an unknown source scheme."""


class EmbedderError(DataprepError):
    """The embedding model failed to load, export, verify or embed."""

"""Exceptions of the vector DB service.

    VectorDbError (ContinuumError)
    ├── FilterError              a query filter names an unknown field or has an invalid value
    ├── CollectionNotFoundError  no table exists for the collection
    ├── LockTimeoutError         the collection's write lock stayed busy; a TransientError, so nak
    └── BatchRejectedError       a chunk batch can never be stored; a PermanentError, so DLQ
        └── ModelMismatchError   the batch's model or dimension differs from the table's
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError, PermanentError, TransientError


class VectorDbError(ContinuumError):
    """Root of the vector DB service's exceptions."""


class FilterError(VectorDbError):
    """A filter that cannot be translated; `field` names the offending filter field."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class CollectionNotFoundError(VectorDbError):
    def __init__(self, collection: str) -> None:
        super().__init__(f"collection {collection!r} not found; ingest documents into it first")
        self.collection = collection


class LockTimeoutError(VectorDbError, TransientError):
    """Another process held the collection's write lock for longer than the wait limit."""

    def __init__(self, collection: str, holder: str, waited_s: float) -> None:
        super().__init__(
            f"write lock of collection {collection!r} is held by {holder} after waiting {waited_s:.1f}s; "
            "the batch will be redelivered"
        )
        self.collection = collection
        self.holder = holder


class BatchRejectedError(VectorDbError, PermanentError):
    """A chunk batch that no redelivery can store; it goes to the dead-letter subject."""


class ModelMismatchError(BatchRejectedError):
    def __init__(self, collection: str, *, expected: tuple[str, int], got: tuple[str, int]) -> None:
        super().__init__(
            f"collection {collection!r} stores model {expected[0]!r} with dimension {expected[1]}, "
            f"but the batch has model {got[0]!r} with dimension {got[1]}; "
            "re-embed the documents with the collection's model or ingest them into a new collection"
        )
        self.collection = collection
        self.expected = expected
        self.got = got

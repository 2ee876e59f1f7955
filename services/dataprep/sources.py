"""Document sources: local roots, S3, the JetStream object store, inline text and pydoc topics.

Listing and reading are separate, so a job reports its document count
before it reads any document. A document that cannot be listed or read becomes a
`SourceError` for that document only.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from continuum.services.dataprep.documents import RawDocument
from continuum.services.dataprep.errors import RequestError, SourceError
from continuum.services.dataprep.settings import DataprepSettings
from continuum.shared.schemas.ingest import IngestRequest

logger = logging.getLogger(__name__)

# S3 objects above this size are spooled to a temporary file instead of memory.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_GLOB_CHARS = set("*?[")
OBJECT_STORE_DEFAULT = "ctm-documents"


@dataclass
class DocumentRef:
    """A listed document: its URI and how to read it, or the error that stopped it."""

    uri: str
    read: Callable[[], Awaitable[RawDocument]] | None = None
    error: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class SourceResolver:
    """Turn the `source` of an ingest request into document references."""

    def __init__(self, settings: DataprepSettings, *, js: Any = None) -> None:
        self.settings = settings
        self.roots = settings.resolved_roots()
        self.js = js

    async def list(self, request: IngestRequest) -> list[DocumentRef]:
        source = request.source.strip()
        if request.text is not None or source.startswith("inline:"):
            text = request.text if request.text is not None else source.removeprefix("inline:")
            return [self._inline(text, request)]
        if not source:
            raise RequestError("invalid ingest request: `source` is empty and no `text` was given")
        if source.startswith("s3://"):
            return await self._list_s3(source, request.glob)
        if source.startswith("objstore://"):
            return await self._list_object_store(source, request.glob)
        if source.startswith("pydoc:"):
            return self._list_pydoc(source)
        if "://" in source and not source.startswith("file://"):
            scheme = source.split("://", 1)[0]
            raise RequestError(
                f"invalid source {source!r}: unknown scheme {scheme!r}; use s3://, objstore://, pydoc:topics, "
                "inline: or a local path"
            )
        return self._list_local(source.removeprefix("file://"), request.glob)

    # Inline text and pydoc topics --------------------------------------------

    def _inline(self, text: str, request: IngestRequest) -> DocumentRef:
        uri = str(request.metadata.get("source_uri") or f"inline://{hashlib.sha256(text.encode()).hexdigest()[:16]}")
        title = str(request.metadata.get("title", ""))
        document = RawDocument(uri=uri, name="inline.txt", body=text.encode("utf-8"), title=title)
        document.format_hint = str(request.metadata.get("format", "markdown"))

        async def read() -> RawDocument:
            return document

        return DocumentRef(uri, read)

    def _list_pydoc(self, source: str) -> list[DocumentRef]:
        """`pydoc:topics` (every topic) or `pydoc:topics/<name>`: CPython's language reference topics."""
        kind, _, name = source.removeprefix("pydoc:").partition("/")
        if kind != "topics":
            raise RequestError(f"invalid source {source!r}: use pydoc:topics or pydoc:topics/<name>")
        from pydoc_data.topics import topics

        names = [name] if name else sorted(topics)
        refs: list[DocumentRef] = []
        for topic in names:
            uri = f"pydoc://topics/{topic}"
            if topic not in topics:
                refs.append(DocumentRef(uri, error=f"{uri}: no such pydoc topic; see `pydoc_data.topics.topics`"))
                continue
            refs.append(DocumentRef(uri, _pydoc_reader(uri, topic, topics[topic])))
        return refs

    # Local files ------------------------------------------------------------

    def _list_local(self, path_text: str, pattern: str | None) -> list[DocumentRef]:
        path = Path(path_text).expanduser()
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        if _GLOB_CHARS & set(path_text):
            return self._list_glob(candidates)
        for candidate in candidates:
            if candidate.exists() or candidate.is_symlink():
                return self._list_existing(candidate, pattern)
        uri = _file_uri(candidates[0])
        if not self._inside_roots(candidates[0]):
            return [DocumentRef(uri, error=self._outside_message(candidates[0]))]
        return [DocumentRef(uri, error=f"{uri}: no such file or directory")]

    def _list_glob(self, patterns: list[Path]) -> list[DocumentRef]:
        refs: list[DocumentRef] = []
        for pattern in patterns:
            anchor = Path(pattern.anchor)
            for match in sorted(anchor.glob(str(pattern.relative_to(anchor)))):
                if match.is_file():
                    refs.append(self._file_ref(match))
        return refs

    def _list_existing(self, path: Path, pattern: str | None) -> list[DocumentRef]:
        if not self._inside_roots(path):
            return [DocumentRef(_file_uri(path), error=self._outside_message(path))]
        resolved = path.resolve()
        if resolved.is_file():
            return [self._file_ref(path)]
        refs: list[DocumentRef] = []
        for file in sorted(resolved.glob(pattern or "**/*")):
            relative = file.relative_to(resolved)
            if any(part.startswith(".") for part in relative.parts) or not file.is_file():
                continue
            refs.append(self._file_ref(file))
        return refs

    def _file_ref(self, path: Path) -> DocumentRef:
        uri = _file_uri(path)
        if not self._inside_roots(path):
            return DocumentRef(uri, error=self._outside_message(path))
        limit = self.settings.max_document_bytes
        resolved = path.resolve()

        async def read() -> RawDocument:
            size = resolved.stat().st_size
            if size > limit:
                raise SourceError(f"{uri}: {size} bytes, above max_document_bytes {limit}", document=uri)
            try:
                data = await asyncio.to_thread(resolved.read_bytes)
            except OSError as exc:
                raise SourceError(f"{uri}: cannot read: {exc.strerror or exc}", document=uri) from exc
            return RawDocument(uri=uri, name=resolved.name, body=data)

        return DocumentRef(uri, read)

    def _inside_roots(self, path: Path) -> bool:
        """True when the path, symlinks resolved, lies inside a configured root."""
        resolved = path.resolve()
        return any(resolved == root or resolved.is_relative_to(root) for root in self.roots)

    def _outside_message(self, path: Path) -> str:
        roots = ", ".join(str(root) for root in self.roots)
        return f"{_file_uri(path)}: outside the configured roots ({roots}); add its directory to dataprep.roots"

    # S3 -----------------------------------------------------------------------

    def _s3_client(self) -> Any:
        from aiobotocore.session import get_session

        s3 = self.settings.s3
        return get_session().create_client(
            "s3",
            endpoint_url=s3.endpoint_url,
            region_name=s3.region,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key,
        )

    async def _list_s3(self, source: str, pattern: str | None) -> list[DocumentRef]:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, _, prefix = source.removeprefix("s3://").partition("/")
        if not bucket:
            raise RequestError(f"invalid source {source!r}: expected s3://bucket/prefix")
        keys: list[tuple[str, int]] = []
        try:
            async with self._s3_client() as client:
                paginator = client.get_paginator("list_objects_v2")
                pages = paginator.paginate(
                    Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": self.settings.s3.page_size}
                )
                async for page in pages:
                    keys.extend((item["Key"], item["Size"]) for item in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise RequestError(f"cannot list {source!r}: {exc}") from exc
        refs: list[DocumentRef] = []
        for key, size in keys:
            if key.endswith("/") or (pattern and not fnmatch.fnmatch(key, pattern)):
                continue
            refs.append(self._s3_ref(bucket, key, size))
        logger.info("listed %d objects under %s", len(refs), source)
        return refs

    def _s3_ref(self, bucket: str, key: str, size: int) -> DocumentRef:
        uri = f"s3://{bucket}/{key}"
        limit = self.settings.max_document_bytes
        if size > limit:
            return DocumentRef(uri, error=f"{uri}: {size} bytes, above max_document_bytes {limit}")

        async def read() -> RawDocument:
            from botocore.exceptions import BotoCoreError, ClientError

            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)
            try:
                async with self._s3_client() as client:
                    response = await client.get_object(Bucket=bucket, Key=key)
                    content_type = response.get("ContentType", "")
                    async with response["Body"] as stream:
                        while chunk := await stream.read(_READ_CHUNK):
                            spool.write(chunk)
            except (BotoCoreError, ClientError) as exc:
                spool.close()
                raise SourceError(f"{uri}: cannot read: {exc}", document=uri) from exc
            return RawDocument(uri=uri, name=PurePosixPath(key).name, body=spool, content_type=content_type)

        return DocumentRef(uri, read)

    # JetStream object store -----------------------------------------------------

    async def _list_object_store(self, source: str, pattern: str | None) -> list[DocumentRef]:
        import nats.js.errors

        bucket, _, prefix = source.removeprefix("objstore://").partition("/")
        bucket = bucket or OBJECT_STORE_DEFAULT
        if self.js is None:
            raise RequestError("object store sources need a NATS connection")
        try:
            store = await self.js.object_store(bucket)
            entries = await store.list()
        except nats.js.errors.NotFoundError:
            entries = []
        except nats.js.errors.BucketNotFoundError as exc:
            raise RequestError(f"invalid source {source!r}: object store {bucket!r} not found") from exc
        refs: list[DocumentRef] = []
        for entry in sorted(entries, key=lambda item: item.name):
            if entry.deleted or not entry.name.startswith(prefix):
                continue
            if pattern and not fnmatch.fnmatch(entry.name, pattern):
                continue
            refs.append(self._object_ref(store, bucket, entry.name, entry.size or 0))
        return refs

    def _object_ref(self, store: Any, bucket: str, name: str, size: int) -> DocumentRef:
        uri = f"objstore://{bucket}/{name}"
        limit = self.settings.max_document_bytes
        if size > limit:
            return DocumentRef(uri, error=f"{uri}: {size} bytes, above max_document_bytes {limit}")

        async def read() -> RawDocument:
            # NOTE: nats-py's object store returns the whole object in memory;
            # max_document_bytes bounds it.
            try:
                result = await store.get(name)
            except Exception as exc:  # noqa: BLE001 - nats-py raises several unrelated types here
                raise SourceError(f"{uri}: cannot read: {type(exc).__name__}: {exc}", document=uri) from exc
            headers = result.info.headers or {}
            return RawDocument(uri=uri, name=PurePosixPath(name).name, body=result.data or b"",
                               content_type=str(headers.get("Content-Type", "")))

        return DocumentRef(uri, read)


def _pydoc_reader(uri: str, topic: str, text: str) -> Callable[[], Awaitable[RawDocument]]:
    async def read() -> RawDocument:
        return RawDocument(uri=uri, name=f"{topic}.txt", body=text.encode("utf-8"), title=topic, format_hint="pydoc")

    return read


def _file_uri(path: Path) -> str:
    return f"file://{path.absolute()}"

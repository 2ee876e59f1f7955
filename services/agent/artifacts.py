"""Fetching, verifying and caching workload artifacts.

An artifact is a Python source file, a zip of Python packages, or a WASM
module, named in the spec as an object in the `ctm-artifacts` object store
or as an `s3://bucket/key` URI. The kind is read from the content (zip and
WASM magic bytes; anything else is Python source). Every artifact is
verified against the spec's `artifact_digest` when one is set, and cached
under `<state_dir>/artifacts/<sha256>/`, so a cached digest is never fetched
again. Digests are written `sha256:<hex>`; the object store's own form
`SHA-256=<base64url>` is accepted too. Both sources are streamed to a file
under `<state_dir>/artifacts/incoming/` in chunks, so a fetch never holds a
whole artifact in memory.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import nats.js.errors
from nats.js import JetStreamContext

from continuum.services.agent.config import AgentSettings
from continuum.services.agent.errors import ArtifactError
from continuum.shared.schemas.workload import WorkloadSpec

logger = logging.getLogger(__name__)

ArtifactKind = Literal["python", "zip", "wasm"]

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class LocalArtifact:
    """A verified artifact in the cache; `directory` is what workers import from."""

    name: str
    digest: str
    kind: ArtifactKind
    blob: Path
    directory: Path


def normalize_digest(value: str) -> str:
    """Return a digest as `sha256:<hex>`, accepting `sha256:<hex>`, `SHA-256=<base64url>` or bare hex."""
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith("sha-256="):
        try:
            raw = base64.urlsafe_b64decode(text.split("=", 1)[1] + "==")
        except (binascii.Error, ValueError) as exc:
            raise ArtifactError(f"invalid digest {value!r}: bad base64", artifact=value) from exc
        return "sha256:" + raw.hex()
    hex_part = lowered.removeprefix("sha256:")
    if not _HEX_DIGEST.fullmatch(hex_part):
        raise ArtifactError(
            f"invalid digest {value!r}: expected sha256:<64 hex digits> or SHA-256=<base64url>", artifact=value
        )
    return "sha256:" + hex_part


def file_digest(path: Path) -> str:
    with path.open("rb") as file:
        return "sha256:" + hashlib.file_digest(file, "sha256").hexdigest()


def read_kind(path: Path) -> ArtifactKind:
    with path.open("rb") as file:
        return detect_kind(file.read(4))


def detect_kind(data: bytes) -> ArtifactKind:
    if data.startswith(b"\0asm"):
        return "wasm"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    return "python"


class ArtifactCache:
    """Fetches artifacts from the object store or S3, verifies them, and keeps them on disk."""

    def __init__(self, js: JetStreamContext, settings: AgentSettings) -> None:
        self.js = js
        self.settings = settings
        self.root = Path(settings.state_dir or ".") / "artifacts"

    async def fetch(self, spec: WorkloadSpec) -> LocalArtifact:
        """Return the cached artifact of `spec`, fetching and verifying it first when needed."""
        expected = normalize_digest(spec.artifact_digest) if spec.artifact_digest else None
        if expected is not None:
            cached = self._cached(spec.artifact, expected)
            if cached is not None:
                return cached

        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        partial = incoming / f"{uuid.uuid4().hex}.part"
        try:
            if spec.artifact.startswith("s3://"):
                await self._fetch_s3(spec.artifact, partial)
            else:
                await self._fetch_object(spec.artifact, partial)

            actual = await asyncio.to_thread(file_digest, partial)
            if expected is not None and actual != expected:
                raise ArtifactError(
                    f"artifact {spec.artifact!r} has digest {actual}, but the spec expects {expected}; push it again "
                    f"or fix artifact_digest",
                    artifact=spec.artifact,
                )
            return self._store(spec.artifact, actual, partial)
        finally:
            partial.unlink(missing_ok=True)

    def _cached(self, name: str, digest: str) -> LocalArtifact | None:
        folder = self.root / digest.removeprefix("sha256:")
        blob = folder / "blob"
        if not blob.exists():
            return None
        kind = read_kind(blob)
        return LocalArtifact(name=name, digest=digest, kind=kind, blob=blob, directory=self._directory(folder, kind))

    def _store(self, name: str, digest: str, partial: Path) -> LocalArtifact:
        """Move a verified download into the cache; a concurrent fetch of the same digest may have done it first."""
        folder = self.root / digest.removeprefix("sha256:")
        folder.mkdir(parents=True, exist_ok=True)
        blob = folder / "blob"
        if not blob.exists():
            partial.replace(blob)
        kind = read_kind(blob)
        if kind == "zip":
            self._unpack(name, blob, folder / "unpacked")
        logger.info("cached artifact %s (%s, %d bytes) as %s", name, kind, blob.stat().st_size, digest)
        return LocalArtifact(name=name, digest=digest, kind=kind, blob=blob, directory=self._directory(folder, kind))

    @staticmethod
    def _directory(folder: Path, kind: ArtifactKind) -> Path:
        return folder / "unpacked" if kind == "zip" else folder

    @staticmethod
    def _unpack(name: str, blob: Path, target: Path) -> None:
        if target.exists():
            return
        try:
            with zipfile.ZipFile(blob) as archive:
                for member in archive.namelist():
                    path = Path(member)
                    if path.is_absolute() or ".." in path.parts:
                        raise ArtifactError(f"artifact {name!r} contains the unsafe path {member!r}", artifact=name)
                partial = target.with_name("unpacked.tmp")
                archive.extractall(partial)
                partial.replace(target)
        except zipfile.BadZipFile as exc:
            raise ArtifactError(f"artifact {name!r} is not a valid zip file: {exc}", artifact=name) from exc

    async def _fetch_object(self, name: str, target: Path) -> None:
        bucket = self.settings.artifact_bucket
        try:
            store = await self.js.object_store(bucket)
            with target.open("wb") as file:
                result = await store.get(name, writeinto=file)
                # nats-py 2.16 returns the bytes of an object reached through a link in `data`
                # instead of writing them to `writeinto`.
                if result.data:
                    file.write(result.data)
        except nats.js.errors.BucketNotFoundError as exc:
            raise ArtifactError(f"object store {bucket!r} does not exist; run `continuum provision`", artifact=name) from exc
        except nats.js.errors.ObjectNotFoundError as exc:
            raise ArtifactError(
                f"artifact {name!r} not found in object store {bucket!r}; upload it with `continuum fn push FILE --name {name}`",
                artifact=name,
            ) from exc
        except nats.js.errors.DigestMismatchError as exc:
            raise ArtifactError(f"artifact {name!r} is corrupt in object store {bucket!r}: {exc}", artifact=name) from exc

    async def _fetch_s3(self, uri: str, target: Path) -> None:
        from aiobotocore.session import get_session
        from botocore.exceptions import BotoCoreError, ClientError

        parsed = urlparse(uri)
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        if not bucket or not key:
            raise ArtifactError(f"invalid artifact URI {uri!r}: expected s3://bucket/key", artifact=uri)
        session = get_session()
        try:
            async with session.create_client(
                "s3", endpoint_url=self.settings.s3_endpoint_url, region_name=self.settings.s3_region
            ) as client:
                response = await client.get_object(Bucket=bucket, Key=key)
                async with response["Body"] as body:
                    with target.open("wb") as file:
                        async for chunk in body.iter_chunks(_CHUNK_BYTES):
                            file.write(chunk)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ArtifactError(_describe_s3_error(uri, bucket, code), artifact=uri) from exc
        except BotoCoreError as exc:
            raise ArtifactError(f"cannot fetch artifact {uri!r} from S3: {exc}", artifact=uri) from exc


def _describe_s3_error(uri: str, bucket: str, code: str) -> str:
    """Turn an S3 error code into a failure reason that names the URI and the fix."""
    if code in ("NoSuchKey", "404"):
        return f"artifact {uri!r} not found in S3; upload it or fix the key in the spec's artifact"
    if code == "NoSuchBucket":
        return f"S3 bucket {bucket!r} of artifact {uri!r} not found; create it or fix the spec's artifact"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return (
            f"access to artifact {uri!r} denied by S3 ({code}); check the agent's AWS credentials "
            f"and their read permission on bucket {bucket!r}"
        )
    return f"cannot fetch artifact {uri!r} from S3: {code}"

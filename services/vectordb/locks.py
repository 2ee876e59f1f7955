"""Per-collection write locks in the `ctm-vectordb-locks` key-value bucket.

LanceDB commits optimistically, and concurrent writers to one table (in
particular on S3) conflict and retry or fail. Every commit to a collection's
table (upserts and maintenance) therefore runs while holding that
collection's lock, so one process commits to a table at a time however many
vectordb processes run.

The lock is a key named after the collection whose value holds the owner and
an expiry time. It is taken with a compare-and-set (create, or update at the
last revision once expired), renewed in the background while held, and
deleted at the revision the owner last wrote. A crashed owner's lock expires
after `ttl_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

import nats.js.errors
from nats.js.kv import KeyValue

from continuum.services.vectordb.errors import LockTimeoutError

logger = logging.getLogger(__name__)

BUCKET = "ctm-vectordb-locks"


class CollectionLocks:
    # NOTE: expiry compares wall clocks of different hosts, so their clocks must agree to well under `ttl_s`.

    def __init__(self, kv: KeyValue, owner: str, *, ttl_s: float, wait_s: float) -> None:
        self.kv = kv
        self.owner = owner
        self.ttl_s = ttl_s
        self.wait_s = wait_s

    def _value(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": time.time() + self.ttl_s}).encode()

    async def try_acquire(self, collection: str) -> tuple[int | None, str]:
        """Take the lock once; return (revision, owner) with revision None when another owner holds it."""
        try:
            return await self.kv.create(collection, self._value()), self.owner
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(collection)
        except nats.js.errors.KeyNotFoundError:
            return None, "unknown"
        holder = json.loads(entry.value or b"{}")
        if holder.get("expires_at", 0) > time.time():
            return None, str(holder.get("owner", "unknown"))
        try:
            revision = await self.kv.update(collection, self._value(), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return None, str(holder.get("owner", "unknown"))
        logger.warning("took over the expired write lock of %s from %s", collection, holder.get("owner"))
        return revision, self.owner

    @contextlib.asynccontextmanager
    async def hold(self, collection: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """Hold the collection's lock for the block; yield False at once when `wait` is False and it is busy.

        Raises LockTimeoutError when waiting longer than `wait_s`.
        """
        started = time.monotonic()
        delay = 0.01
        while True:
            revision, holder = await self.try_acquire(collection)
            if revision is not None:
                break
            if not wait:
                yield False
                return
            waited = time.monotonic() - started
            if waited >= self.wait_s:
                raise LockTimeoutError(collection, holder, waited)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

        state = {"revision": revision}
        renewer = asyncio.create_task(self._renew(collection, state))
        try:
            yield True
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self._release(collection, state["revision"])

    async def _renew(self, collection: str, state: dict[str, int]) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            try:
                state["revision"] = await self.kv.update(collection, self._value(), last=state["revision"])
            except nats.js.errors.KeyWrongLastSequenceError:
                logger.error("lost the write lock of %s to another process while holding it", collection)
                return
            except Exception:  # noqa: BLE001 - a missed renewal is retried on the next tick
                logger.warning("renewing the write lock of %s failed", collection, exc_info=True)

    async def _release(self, collection: str, revision: int) -> None:
        try:
            await self.kv.delete(collection, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            logger.warning("write lock of %s changed owner before release", collection)
        except Exception:  # noqa: BLE001 - the lock expires after ttl_s anyway
            logger.warning("releasing the write lock of %s failed; it expires in %.0fs", collection, self.ttl_s, exc_info=True)

"""Leader election through a compare-and-set lease in the `ctm-scheduler` bucket.

The `leader` key holds the holder's id and the epoch. The leader rewrites
it every `ttl/3` with the revision it last wrote; a follower that sees the
revision unchanged for a whole `ttl` (on its own monotonic clock, so clock
skew between hosts does not matter) takes it over with epoch + 1. A leader
that stops cleanly writes a released record, so a follower takes over at
once. Only one compare-and-set can win per revision, so two schedulers
never hold the same epoch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

from continuum.shared.schemas import decode, encode

logger = logging.getLogger(__name__)

LEASE_KEY = "leader"


class LeaseRecord(msgspec.Struct, kw_only=True):
    holder: str
    epoch: int
    released: bool = False


class LeaderLease:
    def __init__(
        self,
        kv: KeyValue,
        holder: str,
        ttl_s: float,
        *,
        on_elected: Callable[[int], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        self.kv = kv
        self.holder = holder
        self.ttl_s = ttl_s
        self.on_elected = on_elected
        self.on_lost = on_lost
        self.epoch = 0
        self.leading = False
        self._revision = 0
        self._seen_revision = -1
        self._following = ""
        self._seen_at = time.monotonic()
        self._renewed_at = 0.0

    @property
    def valid(self) -> bool:
        """True while this process leads and its last renewal is younger than the ttl."""
        return self.leading and time.monotonic() - self._renewed_at < self.ttl_s

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if self.leading:
                    await self._renew()
                else:
                    await self._try_acquire()
            except asyncio.CancelledError:
                raise
            except (nats.errors.Error, nats.js.errors.Error, OSError, TimeoutError) as exc:
                logger.warning("lease check failed (%s: %s); retrying", type(exc).__name__, exc)
                if self.leading and not self.valid:
                    await self._step_down("lease could not be renewed within its ttl")
            try:
                await asyncio.wait_for(stop.wait(), self.ttl_s / 3)
            except asyncio.TimeoutError:
                pass

    async def _try_acquire(self) -> None:
        try:
            entry = await self.kv.get(LEASE_KEY)
        except nats.js.errors.KeyNotFoundError:
            await self._take(None, 0)
            return

        record = decode(entry.value or b"{}", LeaseRecord)
        revision = entry.revision or 0
        now = time.monotonic()
        if revision != self._seen_revision:
            if not record.released and record.holder != self._following:
                logger.info("following scheduler leader %s (epoch %d) as a standby", record.holder, record.epoch)
                self._following = record.holder
            self._seen_revision = revision
            self._seen_at = now
            if not record.released:
                return
        if record.released or now - self._seen_at >= self.ttl_s:
            await self._take(record, revision)

    async def _take(self, previous: LeaseRecord | None, revision: int) -> None:
        epoch = (previous.epoch if previous else 0) + 1
        value = encode(LeaseRecord(holder=self.holder, epoch=epoch))
        try:
            if revision:
                self._revision = await self.kv.update(LEASE_KEY, value, last=revision)
            else:
                self._revision = await self.kv.create(LEASE_KEY, value)
        except nats.js.errors.KeyWrongLastSequenceError:
            logger.info("another scheduler took the lease first")
            return
        self.epoch = epoch
        self.leading = True
        self._renewed_at = time.monotonic()
        logger.info("elected scheduler leader with epoch %d (previous holder %s)", epoch, previous.holder if previous else "none")
        await self.on_elected(epoch)

    async def _renew(self) -> None:
        value = encode(LeaseRecord(holder=self.holder, epoch=self.epoch))
        try:
            self._revision = await self.kv.update(LEASE_KEY, value, last=self._revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            await self._step_down("another scheduler holds the lease")
            return
        self._renewed_at = time.monotonic()

    async def _step_down(self, reason: str) -> None:
        logger.warning("stepping down as scheduler leader (epoch %d): %s", self.epoch, reason)
        self.leading = False
        self._seen_revision = -1
        await self.on_lost()

    async def release(self) -> None:
        """Hand the lease back so a follower takes over without waiting for the ttl."""
        if not self.leading:
            return
        self.leading = False
        value = encode(LeaseRecord(holder=self.holder, epoch=self.epoch, released=True))
        try:
            await self.kv.update(LEASE_KEY, value, last=self._revision)
            logger.info("released scheduler lease (epoch %d)", self.epoch)
        except (nats.errors.Error, nats.js.errors.Error) as exc:
            logger.warning("lease release failed (%s); a follower takes over after the ttl", exc)

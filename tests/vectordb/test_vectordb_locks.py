"""The per-collection write lock in the `ctm-vectordb-locks` key-value bucket."""

from __future__ import annotations

import asyncio

import pytest

from continuum.services.vectordb.errors import LockTimeoutError
from continuum.services.vectordb.locks import BUCKET, CollectionLocks
from continuum.shared import bus

pytestmark = pytest.mark.timeout(30)


async def test_lock_excludes_second_owner_until_released(js: bus.JetStreamContext, unique: str) -> None:
    kv = await js.key_value(BUCKET)
    first = CollectionLocks(kv, "first", ttl_s=30, wait_s=0.3)
    second = CollectionLocks(kv, "second", ttl_s=30, wait_s=0.3)
    collection = f"lock-{unique}"

    async with first.hold(collection) as held:
        assert held is True
        async with second.hold(collection, wait=False) as other:
            assert other is False
        with pytest.raises(LockTimeoutError) as caught:
            async with second.hold(collection):
                pass
        assert caught.value.holder == "first"

    async with second.hold(collection, wait=False) as held_after:
        assert held_after is True


async def test_expired_lock_of_crashed_owner_is_taken_over(js: bus.JetStreamContext, unique: str) -> None:
    kv = await js.key_value(BUCKET)
    crashed = CollectionLocks(kv, "crashed", ttl_s=0.5, wait_s=1)
    survivor = CollectionLocks(kv, "survivor", ttl_s=30, wait_s=5)
    collection = f"lock-{unique}"

    revision, owner = await crashed.try_acquire(collection)
    assert revision is not None
    assert owner == "crashed"
    assert (await survivor.try_acquire(collection))[0] is None

    await asyncio.sleep(0.6)
    async with survivor.hold(collection) as held:
        assert held is True

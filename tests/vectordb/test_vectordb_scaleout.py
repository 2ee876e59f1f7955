"""Two vectordb processes on one durable consumer: both commit, and no batch is committed twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from continuum.shared import bus
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.rpc import ApiCallError
from continuum.shared.schemas import CollectionRequest, CollectionStats
from continuum.shared.topology import provision
from vectordb_helpers import call, eventually, make_batch, publish_batch

BATCHES_PER_COLLECTION = 30
CHUNKS_PER_BATCH = 5


def start_process(nats_url: str, store: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTINUUM_LOG_FORMAT": "json",
        "CONTINUUM_VECTORDB_URI": str(store),
        "CONTINUUM_VECTORDB_BATCH_MAX_ROWS": "10",
        "CONTINUUM_VECTORDB_BATCH_MAX_DELAY_S": "0.05",
        "CONTINUUM_VECTORDB_MAX_PENDING_MESSAGES": "4",
        "CONTINUUM_VECTORDB_MAINTENANCE_INTERVAL_S": "3600",
        "CONTINUUM_VECTORDB_READ_CONSISTENCY_S": "0",
    }
    env.pop("CONTINUUM_CONFIG", None)
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "continuum.services.vectordb", "--nats-url", nats_url],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


async def ping_instances(nc: bus.NATS) -> set[str]:
    """Return the ids of the vectordb instances that reply to `$SRV.PING.vectordb` within half a second."""
    inbox = nc.new_inbox()
    ids: set[str] = set()

    async def collect(msg: Any) -> None:
        ids.add(json.loads(msg.data)["id"])

    subscription = await nc.subscribe(inbox, cb=collect)
    await nc.publish("$SRV.PING.vectordb", b"", reply=inbox)
    await asyncio.sleep(0.5)
    await subscription.unsubscribe()
    return ids


def committed_batch_ids(log: Path) -> list[str]:
    ids: list[str] = []
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        ids.extend(record.get("batch_ids", []))
    return ids


@pytest.mark.timeout(120)
async def test_two_processes_share_work_without_double_commits(nats_server_factory: Any, tmp_path: Path) -> None:
    server = nats_server_factory()
    settings = Settings(nats=NatsSettings(url=server.url))
    nc = await bus.connect(settings, name="continuum-tests")
    js = bus.jetstream(nc)
    await provision(js, settings.jetstream)
    logs = [tmp_path / "vectordb-0.log", tmp_path / "vectordb-1.log"]
    processes = [start_process(server.url, tmp_path / "lancedb", log) for log in logs]
    try:
        async def both_running() -> bool:
            return len(await ping_instances(nc)) == 2

        await eventually(both_running, timeout=60, what="two vectordb instances")

        collections = [f"shared-{uuid.uuid4().hex[:6]}", f"shared-{uuid.uuid4().hex[:6]}"]
        rng = np.random.default_rng(0)
        published = []
        for index in range(BATCHES_PER_COLLECTION):
            for collection in collections:
                vectors = rng.normal(size=(CHUNKS_PER_BATCH, 8)).tolist()
                texts = [f"{collection} batch {index} chunk {i}" for i in range(CHUNKS_PER_BATCH)]
                event_id = uuid.uuid4().hex
                await publish_batch(js, make_batch(collection, f"doc-{index}", texts, vectors, model="synthetic"), event_id=event_id)
                published.append(event_id)

        for collection in collections:
            async def loaded(collection: str = collection) -> bool:
                try:
                    stats = await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)
                except ApiCallError:
                    return False
                return stats.info.rows == BATCHES_PER_COLLECTION * CHUNKS_PER_BATCH

            await eventually(loaded, timeout=60, what=f"all rows in {collection}")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
        await nc.close()

    per_process = [committed_batch_ids(log) for log in logs]
    assert all(per_process), "each process should have committed at least one batch"
    counts = Counter(per_process[0] + per_process[1])
    assert [event_id for event_id, count in counts.items() if count > 1] == []
    assert set(counts) == set(published)

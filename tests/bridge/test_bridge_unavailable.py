"""The bridge answers 503 while JetStream is down, and the sender's retry is stored after recovery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json

import aiohttp
import pytest

from bridge_support import GITHUB_SECRET, bridge_settings, read_hook_events, start_bridge
from continuum.shared.config import JetStreamSettings
from continuum.shared.natsserver import EmbeddedNatsServer
from continuum.shared.topology import provision


def signed(body: bytes, delivery: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest(),
    }


async def wait_connected(nc, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.1)):
        if nc.is_connected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the bridge did not reconnect to NATS")


@pytest.mark.timeout(60)
async def test_jetstream_down_answers_503_then_stores(nats_server_factory, tmp_path, unique):
    store = tmp_path / "store"
    server = nats_server_factory(store_dir=store)
    port = server.port
    bridge = await start_bridge(server.url, bridge_settings(unique, deliveries_enabled=False))
    source = f"gh-{unique}"
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    url = f"{bridge.url}/hooks/{source}"
    try:
        server.stop()
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=signed(body, "during-outage")) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
            async with session.get(f"{bridge.url}/readyz") as ready:
                ready_status = ready.status

        assert status == 503
        assert retry_after == "2"
        assert ready_status == 503

        restarted = EmbeddedNatsServer(store, port=port).start()
        try:
            await wait_connected(bridge.nc)
            async with aiohttp.ClientSession() as session:
                async with session.post(url, data=body, headers=signed(body, "during-outage")) as response:
                    retried = response.status
            events = await read_hook_events(bridge.js, source)
        finally:
            await bridge.stop()
            restarted.stop()
    except BaseException:
        if not bridge.nc.is_closed:
            await bridge.stop()
        raise

    assert retried == 202
    assert [event.data.delivery_id for event in events] == ["during-outage"]


@pytest.mark.timeout(60)
async def test_missing_stream_answers_503_then_stores(fresh_server, unique):
    bridge = await start_bridge(fresh_server.url, bridge_settings(unique, deliveries_enabled=False))
    source = f"gh-{unique}"
    body = b'{"zen": "keep it logically awesome"}'
    url = f"{bridge.url}/hooks/{source}"
    try:
        await bridge.js.delete_stream("HOOKS")
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=body, headers=signed(body, "no-stream")) as response:
                refused = response.status
                retry_after = response.headers.get("Retry-After")
            await provision(bridge.js, JetStreamSettings())
            async with session.post(url, data=body, headers=signed(body, "no-stream")) as response:
                retried = response.status
        events = await read_hook_events(bridge.js, source)
    finally:
        await bridge.stop()

    assert refused == 503
    assert retry_after == "2"
    assert retried == 202
    assert [event.data.delivery_id for event in events] == ["no-stream"]

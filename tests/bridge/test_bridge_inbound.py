"""Inbound webhooks over real HTTP on loopback into a real nats-server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from datetime import UTC, datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from bridge_support import GITHUB_OLD_SECRET, GITHUB_SECRET, HMAC_SECRET, STANDARD_SECRET


def github_headers(body: bytes, secret: str, *, event: str = "push", delivery: str | None = None) -> dict[str, str]:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }


def standard_headers(body: bytes, *, message_id: str | None = None, timestamp: int | None = None) -> dict[str, str]:
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(timestamp if timestamp is not None else int(time.time()), UTC)
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(STANDARD_SECRET).sign(message_id, moment, body),
    }


async def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            payload = await response.json(content_type=None)
            return response.status, payload, dict(response.headers)


BODY = json.dumps({"ref": "refs/heads/main", "commits": [{"id": "abc123"}]}).encode()


async def test_github_valid_signature_stored(bridge, unique, hook_events):
    source = f"gh-{unique}"
    headers = github_headers(BODY, GITHUB_SECRET, event="push", delivery="d-1")

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", BODY, headers)

    assert status == 202
    assert payload["subject"] == f"ctm.hook.{source}.push"
    events = await hook_events(bridge.js, source)
    assert len(events) == 1
    event = events[0]
    assert event.id == f"{source}:d-1"
    assert event.data.delivery_id == "d-1"
    assert event.data.event == "push"
    assert event.data.body == {"ref": "refs/heads/main", "commits": [{"id": "abc123"}]}
    assert "x-hub-signature-256" not in event.data.headers
    assert event.data.headers["x-github-event"] == "push"


async def test_github_rotated_secret_accepted(bridge, unique, hook_events):
    source = f"gh-{unique}"

    status, _, _ = await post(f"{bridge.url}/hooks/{source}", BODY, github_headers(BODY, GITHUB_OLD_SECRET))

    assert status == 202
    assert len(await hook_events(bridge.js, source)) == 1


async def test_github_wrong_secret_rejected(bridge, unique, hook_events):
    source = f"gh-{unique}"

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", BODY, github_headers(BODY, "not-the-secret"))

    assert status == 401
    assert "no configured secret matches" in payload["error"]
    assert await hook_events(bridge.js, source) == []


async def test_github_missing_signature_rejected(bridge, unique, hook_events):
    source = f"gh-{unique}"
    headers = github_headers(BODY, GITHUB_SECRET)
    del headers["X-Hub-Signature-256"]

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", BODY, headers)

    assert status == 401
    assert "missing X-Hub-Signature-256" in payload["error"]
    assert await hook_events(bridge.js, source) == []


async def test_github_tampered_body_rejected(bridge, unique, hook_events):
    source = f"gh-{unique}"
    headers = github_headers(BODY, GITHUB_SECRET)

    status, _, _ = await post(f"{bridge.url}/hooks/{source}", BODY.replace(b"main", b"evil"), headers)

    assert status == 401
    assert await hook_events(bridge.js, source) == []


async def test_standard_valid_signature_stored(bridge, unique, hook_events):
    source = f"std-{unique}"
    body = json.dumps({"type": "invoice.paid", "data": {"amount": 42}}).encode()

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, standard_headers(body, message_id="msg_1"))

    assert status == 202
    assert payload["subject"] == f"ctm.hook.{source}.invoice_paid"
    events = await hook_events(bridge.js, source)
    assert [event.data.delivery_id for event in events] == ["msg_1"]
    assert events[0].data.event == "invoice.paid"
    assert "webhook-signature" not in events[0].data.headers


async def test_standard_tampered_body_rejected(bridge, unique, hook_events):
    source = f"std-{unique}"
    body = json.dumps({"type": "invoice.paid", "data": {"amount": 42}}).encode()
    headers = standard_headers(body)

    status, _, _ = await post(f"{bridge.url}/hooks/{source}", body.replace(b"42", b"4200"), headers)

    assert status == 401
    assert await hook_events(bridge.js, source) == []


async def test_standard_stale_timestamp_rejected(bridge, unique, hook_events):
    source = f"std-{unique}"
    body = b'{"type": "invoice.paid"}'
    headers = standard_headers(body, timestamp=int(time.time()) - 3600)

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, headers)

    assert status == 401
    assert "stale webhook-timestamp" in payload["error"]
    assert await hook_events(bridge.js, source) == []


async def test_standard_missing_headers_rejected(bridge, unique):
    source = f"std-{unique}"

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", b"{}", {"Content-Type": "application/json"})

    assert status == 401
    assert "webhook-id" in payload["error"]


async def test_hmac_valid_signature_stored(bridge, unique, hook_events):
    source = f"shop-{unique}"
    body = b'{"order": 7}'
    signature = "sha256=" + hmac.new(HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Shop-Signature": signature, "X-Shop-Topic": "orders/create", "X-Shop-Delivery": "o-7"}

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, headers)

    assert status == 202
    assert payload["subject"] == f"ctm.hook.{source}.orders_create"
    events = await hook_events(bridge.js, source)
    assert [event.data.delivery_id for event in events] == ["o-7"]
    assert events[0].data.headers["x-shop-topic"] == "orders/create"


async def test_hmac_wrong_signature_rejected(bridge, unique, hook_events):
    source = f"shop-{unique}"
    body = b'{"order": 7}'
    signature = "sha256=" + hmac.new(b"wrong", body, hashlib.sha256).hexdigest()

    status, _, _ = await post(f"{bridge.url}/hooks/{source}", body, {"X-Shop-Signature": signature})

    assert status == 401
    assert await hook_events(bridge.js, source) == []


async def test_same_delivery_twice_stored_once(bridge, unique, hook_events):
    source = f"gh-{unique}"
    headers = github_headers(BODY, GITHUB_SECRET, delivery="same-delivery")

    first, first_payload, _ = await post(f"{bridge.url}/hooks/{source}", BODY, headers)
    second, second_payload, _ = await post(f"{bridge.url}/hooks/{source}", BODY, headers)

    assert first == 202
    assert second == 202
    assert first_payload["duplicate"] is False
    assert second_payload["duplicate"] is True
    assert len(await hook_events(bridge.js, source)) == 1


async def test_oversized_body_rejected_413(bridge, unique, hook_events):
    source = f"gh-{unique}"
    body = json.dumps({"blob": "x" * (70 * 1024)}).encode()

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, github_headers(body, GITHUB_SECRET))

    assert status == 413
    assert "65536-byte limit" in payload["error"]
    assert await hook_events(bridge.js, source) == []


async def test_chunked_oversized_body_rejected_413(bridge, unique, hook_events):
    source = f"gh-{unique}"
    body = b'{"blob": "' + b"y" * (70 * 1024) + b'"}'

    async def chunks():
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    async with aiohttp.ClientSession() as session:
        async with session.post(f"{bridge.url}/hooks/{source}", data=chunks(), headers=github_headers(body, GITHUB_SECRET)) as response:
            status = response.status

    assert status == 413
    assert await hook_events(bridge.js, source) == []


async def test_non_json_body_rejected_400(bridge, unique, hook_events):
    source = f"gh-{unique}"
    body = b"payload=not-json"

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, github_headers(body, GITHUB_SECRET))

    assert status == 400
    assert "not valid JSON" in payload["error"]
    assert await hook_events(bridge.js, source) == []


async def test_unknown_source_rejected_404(bridge, unique):
    status, payload, _ = await post(f"{bridge.url}/hooks/nobody-{unique}", BODY, github_headers(BODY, GITHUB_SECRET))

    assert status == 404
    assert f"nobody-{unique}" in payload["error"]


async def test_health_endpoints_answer_ok(bridge):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{bridge.url}/healthz") as health:
            assert health.status == 200
        async with session.get(f"{bridge.url}/readyz") as ready:
            assert ready.status == 200


async def test_standard_array_body_uses_default_event(bridge, unique, hook_events):
    source = f"std-{unique}"
    body = b'[{"type": "invoice.paid"}]'

    status, payload, _ = await post(f"{bridge.url}/hooks/{source}", body, standard_headers(body, message_id="msg_array"))

    assert status == 202
    assert payload["subject"] == f"ctm.hook.{source}.webhook"
    events = await hook_events(bridge.js, source)
    assert [event.data.body for event in events] == [[{"type": "invoice.paid"}]]


async def test_body_in_delayed_segments_stored_whole(bridge, unique, hook_events):
    source = f"gh-{unique}"
    body = json.dumps({"blob": "z" * 4096}).encode()
    headers = github_headers(body, GITHUB_SECRET, delivery="split-1")
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    request = f"POST /hooks/{source} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n{head}\r\n"

    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.service.port)
    writer.write(request.encode() + body[:100])
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(body[100:])
    await writer.drain()
    response = await reader.read()
    writer.close()

    assert response.startswith(b"HTTP/1.1 202")
    events = await hook_events(bridge.js, source)
    assert [event.data.body for event in events] == [json.loads(body)]


async def test_access_log_names_delivery_without_secrets(bridge, unique, caplog):
    source = f"gh-{unique}"
    headers = github_headers(BODY, GITHUB_SECRET, delivery="logged-1")
    caplog.set_level(logging.INFO, logger="continuum.services.bridge.access")

    status, _, _ = await post(f"{bridge.url}/hooks/{source}", BODY, headers)
    await asyncio.sleep(0.05)

    assert status == 202
    records = [record for record in caplog.records if record.name == "continuum.services.bridge.access"]
    assert len(records) == 1
    record = records[0]
    assert record.getMessage() == f"POST /hooks/{source} 202"
    assert (record.http_status, record.source, record.delivery_id) == (202, source, "logged-1")
    assert record.body_bytes == len(BODY)
    assert record.duration_ms >= 0
    text = repr(record.__dict__)
    assert headers["X-Hub-Signature-256"] not in text
    assert GITHUB_SECRET not in text
    assert "refs/heads/main" not in text

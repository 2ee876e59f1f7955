"""`continuum webhooks` run as a user would, against a running bridge."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge_support import bridge_settings, start_bridge
from continuum.shared import bus, subjects
from continuum.shared.schemas.hook import WebhookEvent
from continuum.shared.testing import run_cli


async def continuum(url: str, *args: str, columns: int = 250) -> tuple[int, str, str]:
    return await run_cli(url, "webhooks", *args, columns=columns, timeout=30)


@pytest.mark.timeout(90)
async def test_cli_manages_subscriptions_and_shows_attempts(fresh_server, receiver, unique):
    running = await start_bridge(fresh_server.url, bridge_settings(unique))
    try:
        code, out, err = await continuum(
            fresh_server.url, "add", receiver.url, "--filter", f"ctm.hook.cli{unique}.*", "--id", "cli-sub", "-H", "X-Env: test", "-o", "json"
        )
        assert code == 0, err
        created = json.loads(out)
        assert created["secret"].startswith("whsec_")

        code, out, err = await continuum(fresh_server.url, "list", "-o", "json")
        assert code == 0, err
        assert [item["id"] for item in json.loads(out)] == ["cli-sub"]
        assert "whsec_" not in out

        event = WebhookEvent(source=f"cli{unique}", event="push", delivery_id="c1", body={})
        await bus.publish(running.js, subjects.hook(f"cli{unique}", "push"), event, source="tests", event_id="cli-1")
        for _ in range(200):
            if receiver.accepted:
                break
            await asyncio.sleep(0.05)

        code, out, err = await continuum(fresh_server.url, "deliveries", "--subscription", "cli-sub", "-o", "json")
        assert code == 0, err
        attempts = json.loads(out)
        assert [(item["attempt"], item["outcome"], item["status_code"]) for item in attempts] == [(1, "delivered", 200)]

        code, out, err = await continuum(fresh_server.url, "deliveries")
        assert code == 0, err
        assert "delivered" in out

        code, out, err = await continuum(fresh_server.url, "add", "http://169.254.10.10/", "--filter", "ctm.placement.failed")
        assert code == 1
        assert "link-local" in err

        code, out, err = await continuum(fresh_server.url, "remove", "cli-sub")
        assert code == 0, err
        code, out, err = await continuum(fresh_server.url, "remove", "cli-sub")
        assert code == 1
        assert "not found" in err
    finally:
        await running.stop()


@pytest.mark.timeout(60)
async def test_cli_add_prints_whole_secret_in_narrow_terminal(fresh_server, receiver, unique):
    running = await start_bridge(fresh_server.url, bridge_settings(unique))
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" * 2
    try:
        code, out, err = await continuum(
            fresh_server.url, "add", receiver.url, "--filter", "ctm.placement.failed", "--secret", secret, columns=60
        )
    finally:
        await running.stop()

    assert code == 0, err
    assert secret in out.split()
    assert "not shown again" in out

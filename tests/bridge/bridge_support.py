"""Fixtures for the webhook bridge: a running bridge on loopback and a scriptable webhook receiver."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from continuum.services.bridge.service import BridgeService
from continuum.services.bridge.settings import BridgeSettings, SourceSettings
from continuum.shared import bus
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.natsserver import EmbeddedNatsServer
from continuum.shared.runtime import ServiceContext
from continuum.shared.topology import provision

GITHUB_SECRET = "github-current-secret"
GITHUB_OLD_SECRET = "github-previous-secret"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-key-0123").decode()
HMAC_SECRET = "shop-hmac-secret"


def bridge_settings(unique: str, **overrides: Any) -> BridgeSettings:
    """Settings with one source per scheme, named `<scheme>-<unique>`, on a free loopback port."""
    sources = {
        f"gh-{unique}": SourceSettings(scheme="github", secrets=[GITHUB_SECRET, GITHUB_OLD_SECRET]),
        f"std-{unique}": SourceSettings(scheme="standard", secrets=[STANDARD_SECRET], tolerance_s=60),
        f"shop-{unique}": SourceSettings(
            scheme="hmac",
            secrets=[HMAC_SECRET],
            signature_header="X-Shop-Signature",
            event_header="X-Shop-Topic",
            delivery_header="X-Shop-Delivery",
        ),
    }
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "sources": sources,
        "max_body_bytes": 64 * 1024,
        "publish_timeout_s": 0.5,
        "retry_after_s": 2,
        "allowed_target_networks": ["127.0.0.0/8"],
        "max_attempts": 3,
        "retry_base_s": 0.2,
        "retry_max_s": 1.0,
        "delivery_timeout_s": 2.0,
    }
    values.update(overrides)
    return BridgeSettings(**values)


@dataclass
class RunningBridge:
    service: BridgeService
    nc: bus.NATS
    js: bus.JetStreamContext

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    async def stop(self) -> None:
        await self.service.stop()
        await self.nc.close()


async def start_bridge(server_url: str, settings: BridgeSettings) -> RunningBridge:
    """Start a bridge with its own connection, as a separate process would have."""
    shared = Settings(nats=NatsSettings(url=server_url, reconnect_wait_s=0.2))
    nc = await bus.connect(shared, name="continuum-bridge-test")
    js = bus.jetstream(nc, shared)
    await provision(js, shared.jetstream)
    service = BridgeService(settings)
    await service.start(ServiceContext(name="bridge", settings=shared, nc=nc, js=js))
    return RunningBridge(service=service, nc=nc, js=js)


@pytest.fixture
async def bridge(nats_server: EmbeddedNatsServer, unique: str) -> AsyncIterator[RunningBridge]:
    running = await start_bridge(nats_server.url, bridge_settings(unique, deliveries_enabled=False))
    yield running
    await running.stop()


@dataclass
class Receiver:
    """A webhook receiver on loopback that answers with scripted statuses (then 200) and records every request."""

    statuses: list[int] = field(default_factory=list)
    always_fail: bool = False
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((dict(request.headers), body))
        if self.always_fail:
            status = 503
        else:
            status = self.statuses.pop(0) if self.statuses else 200
        if status < 300:
            self.accepted.append(request.headers.get("webhook-id", ""))
        return web.Response(status=status, text="ok" if status < 300 else "failed")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state
    await runner.cleanup()


@pytest.fixture
def fresh_server(nats_server_factory: Callable[..., EmbeddedNatsServer]) -> EmbeddedNatsServer:
    """A server of this test's own, for tests that restart it or run the shared durable consumers."""
    return nats_server_factory()


async def read_hook_events(js: bus.JetStreamContext, source: str) -> list[Any]:
    """Return every CloudEvent stored in HOOKS for one source, oldest first."""
    from nats.js import api as js_api

    from continuum.shared.envelope import from_nats
    from continuum.shared.schemas.hook import WebhookEvent

    subject = f"ctm.hook.{source}.>"
    config = js_api.ConsumerConfig(ack_policy=js_api.AckPolicy.NONE, filter_subject=subject, inactive_threshold=10.0)
    subscription = await js.pull_subscribe(subject, stream="HOOKS", config=config)
    events = []
    try:
        info = await subscription.consumer_info()
        if info.num_pending:
            for msg in await subscription.fetch(info.num_pending, timeout=2.0):
                events.append(from_nats(msg.data, msg.headers, WebhookEvent, subject=msg.subject))
    finally:
        await subscription.unsubscribe()
    return events


@pytest.fixture
def hook_events() -> Callable[[bus.JetStreamContext, str], Any]:
    return read_hook_events

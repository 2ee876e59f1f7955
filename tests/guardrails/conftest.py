"""Fixtures that run guardrails services in the test's event loop against the real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import nats.errors
import pytest

from continuum.services.guardrails.service import GuardrailsService
from continuum.services.guardrails.settings import GuardrailsSettings
from continuum.shared import bus
from continuum.shared.config import Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.topology import provision

StartGuardrails = Callable[..., Awaitable[GuardrailsService]]


async def _wait_until_answering(settings: Settings) -> None:
    """Wait until `$SRV.PING.guardrails` answers on a separate connection, at most 10 s.

    NOTE: on a nats-server 2.15.1 that has just started and been provisioned,
    the first request to `ctm.guard.check` now and then gets "no responders"
    although the endpoints are subscribed and flushed, and the next request
    succeeds (about 1 run in 10 outside pytest too). The cause is not known;
    this wait keeps the tests from depending on it.
    """
    client = await bus.connect(settings, name="continuum-test-ping")
    try:
        for _ in range(100):
            try:
                await client.request("$SRV.PING.guardrails", b"", timeout=0.5)
                return
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
                await asyncio.sleep(0.1)
        raise AssertionError("guardrails did not answer $SRV.PING within 10 s")
    finally:
        await client.close()


@pytest.fixture
async def start_guardrails() -> AsyncIterator[StartGuardrails]:
    """Start a guardrails service on its own connection; every one started is stopped when the test ends."""
    running: list[tuple[GuardrailsService, bus.NATS]] = []

    async def start(settings: Settings, guard_settings: GuardrailsSettings | None = None, name: str = "guardrails") -> GuardrailsService:
        nc = await bus.connect(settings, name=f"continuum-test-{name}-{len(running)}")
        js = bus.jetstream(nc, settings)
        await provision(js, settings.jetstream)
        service = GuardrailsService(guard_settings or GuardrailsSettings())
        context = ServiceContext(name="guardrails", settings=settings, nc=nc, js=js, instance_id=f"test-{len(running)}")
        await service.start(context)
        running.append((service, nc))
        await _wait_until_answering(settings)
        return service

    yield start
    for service, nc in running:
        await service.stop()
        await nc.close()

"""Fixtures that run guardrails services in the test's event loop against the real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from continuum.services.guardrails.service import GuardrailsService
from continuum.services.guardrails.settings import GuardrailsSettings
from continuum.shared import bus
from continuum.shared.config import Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.topology import provision

StartGuardrails = Callable[..., Awaitable[GuardrailsService]]


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
        return service

    yield start
    for service, nc in running:
        await service.stop()
        await nc.close()

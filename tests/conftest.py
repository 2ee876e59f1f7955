"""Fixtures: a real nats-server with JetStream per test session, and helpers around it.

No test mocks NATS. Tests that need an isolated server (restarts, topology
from scratch) take `nats_server_factory`; the rest share `nats_server` and
keep apart through unique names from `unique`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from continuum.shared import bus
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.natsserver import EmbeddedNatsServer
from continuum.shared.topology import provision


# botocore looks for credentials at the cloud instance metadata address when none
# are configured; tests talk to loopback S3 stand-ins only, so that look-up is off.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path_factory.mktemp("nats"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_server_factory(tmp_path: Path) -> Iterator[Callable[..., EmbeddedNatsServer]]:
    """Start extra servers for one test; every one is stopped when the test ends."""
    started: list[EmbeddedNatsServer] = []

    def start(**kwargs: object) -> EmbeddedNatsServer:
        store = kwargs.pop("store_dir", None) or tmp_path / f"nats-{len(started)}"
        server = EmbeddedNatsServer(store, **kwargs)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def settings(nats_server: EmbeddedNatsServer) -> Settings:
    return Settings(nats=NatsSettings(url=nats_server.url, reconnect_wait_s=0.2))


@pytest.fixture
async def nc(settings: Settings) -> AsyncIterator[bus.NATS]:
    client = await bus.connect(settings, name="continuum-tests")
    yield client
    await client.close()


@pytest.fixture
async def js(nc: bus.NATS, settings: Settings) -> bus.JetStreamContext:
    context = bus.jetstream(nc, settings)
    await provision(context, settings.jetstream)
    return context


@pytest.fixture
def unique() -> str:
    """A short random suffix for subjects, streams, durables and names used by one test."""
    return uuid.uuid4().hex[:10]

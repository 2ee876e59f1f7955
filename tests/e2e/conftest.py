"""The whole platform as `continuum up` starts it: one process per service, a real nats-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.rpc import ApiCallError, call, discover_services
from continuum.shared.schemas import EmptyRequest
from continuum.shared.schemas.scheduler_api import NodeList

REQUIRED_SERVICES = ("scheduler", "dataprep", "vectordb", "guardrails", "workflow", "bridge")


@dataclass
class Platform:
    """A running `continuum up`: its NATS URL, process, state and document folders."""

    url: str
    process: subprocess.Popen[bytes]
    state_dir: Path
    documents: Path

    def service_processes(self, name: str) -> list[psutil.Process]:
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            try:
                if f"continuum.services.{name}" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def cli(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CONTINUUM_NATS_URL": self.url, "COLUMNS": "200"}
        return subprocess.run(
            [sys.executable, "-m", "continuum.shared.cli.main", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


async def _wait_ready(url: str, timeout: float) -> None:
    nc = await bus.connect(Settings(nats=NatsSettings(url=url)), name="e2e-wait")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = await discover_services(nc, timeout=0.5)
            if all(name in running for name in REQUIRED_SERVICES):
                try:
                    nodes = await call(nc, subjects.api("nodes"), EmptyRequest(), NodeList, timeout=2.0)
                except ApiCallError:
                    nodes = NodeList()
                if any(node.status == "ready" for node in nodes.nodes):
                    return
            await asyncio.sleep(1.0)
        raise AssertionError(f"platform not ready within {timeout:.0f}s (services seen: {sorted(running)})")
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    documents = root / "documents"
    documents.mkdir()
    with socket_port() as port:
        url = f"nats://127.0.0.1:{port}"
    with socket_port() as bridge_port:
        pass
    env = {
        **os.environ,
        "CONTINUUM_NATS_URL": url,
        "CONTINUUM_DATAPREP_ROOTS": str(documents),
        "CONTINUUM_BRIDGE_PORT": str(bridge_port),
        # A killed vector DB's write lock expires quickly, so its restart takes over in seconds.
        "CONTINUUM_VECTORDB_LOCK_TTL_S": "5",
        "PYTHONUNBUFFERED": "1",
    }
    log = (root / "up.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "continuum.shared.cli.main", "up", "--no-live", "--state-dir", str(root / "state")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
        start_new_session=True,
    )
    platform = Platform(url=url, process=process, state_dir=root / "state", documents=documents)
    try:
        asyncio.run(_wait_ready(url, timeout=240.0))
        yield platform
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


class socket_port:
    """Reserve a free loopback TCP port number (released on exit, then used by the server)."""

    def __enter__(self) -> int:
        import socket

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        return self._socket.getsockname()[1]

    def __exit__(self, *exc_info: object) -> None:
        self._socket.close()


@pytest.fixture
async def platform_nc(platform: Platform):
    nc = await bus.connect(Settings(nats=NatsSettings(url=platform.url)), name="e2e-test")
    yield nc
    await nc.close()

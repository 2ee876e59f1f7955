"""A three-node hub cluster and one edge leaf node, started from the shipped configs.

Only ports, paths and passwords differ from a production start: they come
from the environment, as the configs expect. The cluster is shared by the
whole session; the admin provisions the topology once, as in production.
Service processes run with their role's credentials only.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest

from continuum.shared import deploy_config
from continuum.shared.config import JetStreamSettings
from continuum.shared.natsserver import EmbeddedNatsServer
from continuum.shared.topology import provision

REPO = Path(__file__).resolve().parents[2]
NATS_DIR = REPO / "deploy" / "nats"
INVENTORY = NATS_DIR / "inventory.toml"
SITE = "site-a"
HUB_NODES = 3
# Every stream and bucket is replicated on the three hub nodes; services must declare the same.
REPLICAS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Deployment:
    """Running hub nodes and the leaf node, with every user's password."""

    hub: list[EmbeddedNatsServer]
    leaf: EmbeddedNatsServer
    passwords: dict[str, str] = field(default_factory=dict)
    inventory: deploy_config.Inventory = field(default_factory=deploy_config.Inventory)

    @property
    def hub_url(self) -> str:
        return ",".join(server.url for server in self.hub)

    def url_for(self, user: str, server: EmbeddedNatsServer) -> str:
        return f"nats://{user}:{self.passwords[user]}@127.0.0.1:{server.port}"

    async def connect(self, user: str, *, leaf: bool = False, **options: object) -> nats.NATS:
        server = self.leaf if leaf else self.hub[0]
        return await nats.connect(
            f"nats://127.0.0.1:{server.port}",
            user=user,
            password=self.passwords[user],
            name=f"test-{user}",
            max_reconnect_attempts=0,
            **options,
        )


def _passwords(inventory: deploy_config.Inventory) -> dict[str, str]:
    users = [user.name for user in deploy_config.users_for(inventory, "hub")]
    users += [user.name for user in deploy_config.users_for(inventory, "leaf", SITE)]
    users += ["system", deploy_config.ROUTE_USER]
    return {user: deploy_config.generate_password() for user in users}


async def _wait_for_jetstream(url: str, user: str, password: str, timeout: float = 30.0) -> None:
    """Wait until the hub cluster has elected a JetStream meta leader."""
    nc = await nats.connect(url, user=user, password=password, max_reconnect_attempts=-1)
    try:
        js = nc.jetstream()
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                await js.account_info()
                return
            except Exception:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    inventory = deploy_config.load_inventory(INVENTORY)
    passwords = _passwords(inventory)
    base = tmp_path_factory.mktemp("deploy")
    saved = dict(os.environ)
    started: list[EmbeddedNatsServer] = []

    for user, password in passwords.items():
        os.environ[deploy_config.password_variable(user)] = password
    os.environ["NATS_HOST"] = "127.0.0.1"

    try:
        cluster_ports = [free_port() for _ in range(HUB_NODES)]
        leaf_ports = [free_port() for _ in range(HUB_NODES)]
        route_password = passwords[deploy_config.ROUTE_USER]
        routes = [f"nats-route://route:{route_password}@127.0.0.1:{port}" for port in cluster_ports]
        hub: list[EmbeddedNatsServer] = []
        for index in range(HUB_NODES):
            os.environ.update(
                NATS_SERVER_NAME=f"hub-{index}",
                NATS_CLIENT_PORT=str(free_port()),
                NATS_CLUSTER_PORT=str(cluster_ports[index]),
                NATS_LEAF_PORT=str(leaf_ports[index]),
                NATS_MONITOR_PORT=str(free_port()),
                NATS_STORE_DIR=str(base / f"hub-{index}"),
                NATS_ROUTES="[" + ",".join(f'"{route}"' for route in routes) + "]",
            )
            server = EmbeddedNatsServer(base / f"hub-{index}", config_file=NATS_DIR / "hub.conf")
            server.start()
            started.append(server)
            hub.append(server)

        asyncio.run(_wait_for_jetstream(hub[0].url, "admin", passwords["admin"]))

        leaf_password = passwords[deploy_config.leaf_user(SITE)]
        os.environ.update(
            NATS_SERVER_NAME=f"leaf-{SITE}",
            NATS_CLIENT_PORT=str(free_port()),
            NATS_MONITOR_PORT=str(free_port()),
            NATS_STORE_DIR=str(base / "leaf"),
            CONTINUUM_SITE_DOMAIN=inventory.site(SITE).domain,
            CONTINUUM_HUB_LEAF_URLS="["
            + ",".join(f'"nats-leaf://leaf-{SITE}:{leaf_password}@127.0.0.1:{port}"' for port in leaf_ports)
            + "]",
        )
        leaf = EmbeddedNatsServer(base / "leaf", config_file=NATS_DIR / "leaf.conf")
        leaf.start()
        started.append(leaf)
        _wait_for_leaf_connection(leaf)

        yield Deployment(hub=hub, leaf=leaf, passwords=passwords, inventory=inventory)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        for server in reversed(started):
            server.stop()


def _wait_for_leaf_connection(leaf: EmbeddedNatsServer, timeout: float = 15.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Leafnode connection created" in leaf.log_file.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"leaf node did not connect to the hub within {timeout}s; see {leaf.log_file}")


@pytest.fixture(scope="session")
def provisioned(deployment: Deployment) -> Deployment:
    """The deployment after `continuum provision` ran with the admin user."""

    async def _provision() -> None:
        nc = await deployment.connect("admin")
        try:
            await provision(nc.jetstream(), JetStreamSettings(replicas=REPLICAS))
        finally:
            await nc.close()

    asyncio.run(_provision())
    return deployment


def violations(server: EmbeddedNatsServer, user: str) -> list[str]:
    """Permission violations that the server logged for `user`."""
    # For example: "CONTINUUM/user:scheduler" - Publish Violation - Subject "..."
    pattern = re.compile(rf'/user:{re.escape(user)}" - .*Violation')
    return [line for line in server.log_file.read_text(errors="replace").splitlines() if pattern.search(line)]


class ServiceProcess:
    """`python -m continuum.services.NAME` with one role's credentials, configured only through the environment."""

    def __init__(self, name: str, user: str, password: str, url: str, root: Path, env: dict[str, str]) -> None:
        self.name = name
        self.user = user
        self.log_file = root / f"{name}-{user}.log"
        # The server passwords in this process's environment are not the service's business.
        inherited = {key: value for key, value in os.environ.items() if not key.startswith(deploy_config.PASSWORD_PREFIX)}
        self.env = {
            **inherited,
            "CONTINUUM_NATS_URL": url,
            "CONTINUUM_NATS_USER": user,
            "CONTINUUM_NATS_PASSWORD": password,
            "CONTINUUM_JETSTREAM_REPLICAS": str(REPLICAS),
            "CONTINUUM_STATE_DIR": str(root / f"{name}-state"),
            "CONTINUUM_LOG_FORMAT": "text",
            **env,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, *args: str) -> ServiceProcess:
        with self.log_file.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"continuum.services.{self.name}", *args,
                env=self.env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )
        return self

    def output(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    async def wait_running(self, timeout: float = 60.0) -> None:
        """Wait for the `service NAME running` log line; fail with the output if the process exits first."""
        assert self.process is not None
        marker = f"service {self.name} running"
        deadline = asyncio.get_running_loop().time() + timeout
        while marker not in self.output():
            if self.process.returncode is not None:
                raise AssertionError(f"{self.name} exited with code {self.process.returncode}:\n{self.output()[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.name} not running after {timeout}s:\n{self.output()[-3000:]}")
            await asyncio.sleep(0.1)

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode


async def eventually(predicate, *, timeout: float = 20.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Return the first truthy result of `predicate()`, or the last one after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(interval)

"""A three-node hub cluster and one edge leaf node, started from the shipped configs.

Only ports, paths and passwords differ from a production start: they come
from the environment, as the configs expect.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest

from continuum.shared import deploy_config
from continuum.shared.natsserver import EmbeddedNatsServer

REPO = Path(__file__).resolve().parents[2]
NATS_DIR = REPO / "deploy" / "nats"
INVENTORY = NATS_DIR / "inventory.toml"
SITE = "site-a"
HUB_NODES = 3


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


@pytest.fixture(scope="module")
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

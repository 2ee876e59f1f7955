"""`continuum fn push`, `continuum agent` and `continuum fn invoke` as a user runs them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys

import pytest

from continuum.shared import subjects
from continuum.shared.schemas import decode
from continuum.shared.schemas.telemetry import Telemetry
from continuum.shared.schemas.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(90)

CLI = [sys.executable, "-m", "continuum.shared.cli.main"]


async def _run(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(*CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, stdout.decode(), stderr.decode()


async def test_cli_pushes_runs_agent_and_invokes(unique, nc, js, nats_server, place, watch_status, function_source, tmp_path):
    node, name = f"cli-{unique}", f"fn-{unique}"
    source = tmp_path / "main.py"
    source.write_bytes(function_source)
    status = await watch_status(name)

    code, out, err = await _run("--nats-url", nats_server.url, "fn", "push", str(source), "--name", name, "-o", "json")
    assert code == 0, err
    pushed = json.loads(out)
    assert pushed["digest"] == "sha256:" + hashlib.sha256(function_source).hexdigest()

    telemetry = asyncio.get_running_loop().create_future()

    async def _first_report(msg) -> None:
        if not telemetry.done():
            telemetry.set_result(decode(msg.data, Telemetry))

    watcher = await nc.subscribe(subjects.telemetry(node), cb=_first_report)
    agent = await asyncio.create_subprocess_exec(
        *CLI, "--nats-url", nats_server.url, "agent", "--node-id", node, "--zone", "z1", "--label", "role=edge",
        "--state-dir", str(tmp_path / "state"), env={**os.environ},
    )
    try:
        report = await asyncio.wait_for(telemetry, 30)
        await place(node, WorkloadSpec(name=name, artifact=name, artifact_digest=pushed["digest"]), f"{name}-r1")
        await status.wait_for(f"{name}-r1", "running", timeout=30)
        code, out, err = await _run("--nats-url", nats_server.url, "fn", "invoke", name, '{"x": 1}')
        bad_code, _, bad_err = await _run("--nats-url", nats_server.url, "fn", "invoke", name, "{oops")
    finally:
        agent.send_signal(signal.SIGTERM)
        await asyncio.wait_for(agent.wait(), 30)
        await watcher.unsubscribe()

    assert report.cpu.cores == os.cpu_count()
    assert report.zone == "z1" and report.labels == {"role": "edge"}
    assert code == 0, err
    assert json.loads(out)["result"]["echo"] == {"x": 1}
    assert bad_code == 1
    assert "not JSON" in bad_err


async def test_push_rejects_invalid_name(nats_server, tmp_path):
    source = tmp_path / "main.py"
    source.write_text("def handler(event):\n    return event\n")

    code, _, err = await _run("--nats-url", nats_server.url, "fn", "push", str(source), "--name", "bad.name")

    assert code == 1
    assert "invalid artifact name 'bad.name'" in err

"""Artifacts referenced as `s3://bucket/key`, fetched from moto's S3 server over HTTP on loopback."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import boto3
import pytest
import wasmtime

from continuum.shared.schemas.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(60)

# A WASI command that writes a fixed JSON document to stdout.
CONSTANT_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\\"from\\":\\"s3\\"}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 13))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server over HTTP on a free loopback port."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, unique: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, str]:
    """A fresh bucket, with dummy AWS credentials in the environment the agent reads them from."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"artifacts-{unique}".lower().replace("_", "-")
    client.create_bucket(Bucket=bucket)
    return client, bucket


async def _start_s3_agent(start_agent, s3_endpoint: str, node: str):
    return await start_agent(node, s3_endpoint_url=s3_endpoint, s3_region="us-east-1")


@pytest.mark.parametrize("with_digest", [False, True], ids=["no-digest", "digest"])
async def test_s3_function_artifact_is_invocable(
    unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call, function_source, with_digest
):
    client, bucket = s3_bucket
    node, name = f"node-{unique}", f"fn-{unique}"
    client.put_object(Bucket=bucket, Key="functions/handler.py", Body=function_source)
    digest = "sha256:" + hashlib.sha256(function_source).hexdigest()
    status = await watch_status(name)
    agent = await _start_s3_agent(start_agent, s3_endpoint, node)

    spec = WorkloadSpec(
        name=name, artifact=f"s3://{bucket}/functions/handler.py", artifact_digest=digest if with_digest else None
    )
    await place(node, spec, f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")
    reply = await call(name, {"n": 7})

    assert reply["ok"] is True
    assert reply["result"]["echo"] == {"n": 7}
    assert (agent.artifacts.root / digest.removeprefix("sha256:") / "blob").read_bytes() == function_source


async def test_s3_wasm_artifact_is_invocable(unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call):
    client, bucket = s3_bucket
    node, name = f"node-{unique}", f"wasm-{unique}"
    module = wasmtime.wat2wasm(CONSTANT_WAT)
    client.put_object(Bucket=bucket, Key="modules/constant.wasm", Body=module)
    status = await watch_status(name)
    await _start_s3_agent(start_agent, s3_endpoint, node)

    spec = WorkloadSpec(
        name=name,
        artifact=f"s3://{bucket}/modules/constant.wasm",
        artifact_digest="sha256:" + hashlib.sha256(module).hexdigest(),
        runtime="wasm",
    )
    await place(node, spec, f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")
    reply = await call(name, {})

    assert reply["ok"] is True
    assert reply["result"] == {"from": "s3"}


async def test_s3_large_artifact_is_cached_intact(unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call, function_source):
    client, bucket = s3_bucket
    node, name = f"node-{unique}", f"big-{unique}"
    # An 8 MiB comment block spans several 1 MiB download chunks, so a fetch that drops or repeats one fails.
    padded = function_source + b"\n" + (b"# " + b"x" * 1022 + b"\n") * 8192
    client.put_object(Bucket=bucket, Key="big/handler.py", Body=padded)
    digest = "sha256:" + hashlib.sha256(padded).hexdigest()
    status = await watch_status(name)
    agent = await _start_s3_agent(start_agent, s3_endpoint, node)

    await place(node, WorkloadSpec(name=name, artifact=f"s3://{bucket}/big/handler.py", artifact_digest=digest), f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")
    reply = await call(name, {"big": True})
    cached = agent.artifacts.root / digest.removeprefix("sha256:")

    assert reply["ok"] is True
    assert (cached / "blob").stat().st_size == len(padded)
    assert list((agent.artifacts.root / "incoming").iterdir()) == []


async def _serving_other(unique, s3_bucket, start_agent, s3_endpoint, place, watch_status, function_source):
    """Start an agent with one healthy S3-backed replica; return the agent, its node id and that workload's name."""
    client, bucket = s3_bucket
    node, other = f"node-{unique}", f"ok-{unique}"
    client.put_object(Bucket=bucket, Key="ok/handler.py", Body=function_source)
    other_status = await watch_status(other)
    agent = await _start_s3_agent(start_agent, s3_endpoint, node)
    await place(node, WorkloadSpec(name=other, artifact=f"s3://{bucket}/ok/handler.py"), f"{other}-r1")
    await other_status.wait_for(f"{other}-r1", "running")
    return agent, node, other


async def test_s3_wrong_digest_fails_replica(
    unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call, function_source
):
    client, bucket = s3_bucket
    agent, node, other = await _serving_other(unique, s3_bucket, start_agent, s3_endpoint, place, watch_status, function_source)
    name = f"fn-{unique}"
    client.put_object(Bucket=bucket, Key="bad/handler.py", Body=function_source)
    status = await watch_status(name)
    wrong = "sha256:" + "0" * 64

    await place(node, WorkloadSpec(name=name, artifact=f"s3://{bucket}/bad/handler.py", artifact_digest=wrong), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert f"s3://{bucket}/bad/handler.py" in failed.reason
    assert wrong in failed.reason
    assert hashlib.sha256(function_source).hexdigest() in failed.reason
    assert list((agent.artifacts.root / "incoming").iterdir()) == []
    assert (await call(other, {"still": "serving"}))["result"]["echo"] == {"still": "serving"}


async def test_s3_missing_key_fails_replica(
    unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call, function_source
):
    _, bucket = s3_bucket
    _, node, other = await _serving_other(unique, s3_bucket, start_agent, s3_endpoint, place, watch_status, function_source)
    name = f"fn-{unique}"
    status = await watch_status(name)

    await place(node, WorkloadSpec(name=name, artifact=f"s3://{bucket}/missing/handler.py"), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert f"s3://{bucket}/missing/handler.py" in failed.reason
    assert "not found" in failed.reason
    assert (await call(other, {"still": "serving"}))["result"]["echo"] == {"still": "serving"}


async def test_s3_missing_bucket_fails_replica(unique, s3_endpoint, s3_bucket, start_agent, place, watch_status, call, function_source):
    _, node, other = await _serving_other(unique, s3_bucket, start_agent, s3_endpoint, place, watch_status, function_source)
    name = f"fn-{unique}"
    status = await watch_status(name)

    await place(node, WorkloadSpec(name=name, artifact=f"s3://no-such-bucket-{unique.lower()}/handler.py"), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert "bucket" in failed.reason
    assert "not found" in failed.reason
    assert (await call(other, {}))["ok"] is True

"""Function and WASM runtimes: errors, timeouts, crashes, limits and scale to zero."""

from __future__ import annotations

import asyncio

import pytest
import wasmtime

from continuum.shared.schemas.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(60)

# A WASI command that wraps its stdin as {"echo": <stdin>} on stdout.
ECHO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\\"echo\\":")
  (data (i32.const 32) "}")
  (func (export "_start")
    ;; read stdin into offset 1024 (up to 4096 bytes); the count lands at offset 8
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    ;; write prefix, input and suffix with one fd_write each (a write may be partial per iovec list)
    (i32.store (i32.const 64) (i32.const 16))
    (i32.store (i32.const 68) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 12)))
    (i32.store (i32.const 64) (i32.const 1024))
    (i32.store (i32.const 68) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 12)))
    (i32.store (i32.const 64) (i32.const 32))
    (i32.store (i32.const 68) (i32.const 1))
    (drop (call $fd_write (i32.const 1) (i32.const 64) (i32.const 1) (i32.const 12)))))
"""

LOOP_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "_start") (loop $forever (br $forever))))
"""


async def _running(unique, start_agent, place, push_artifact, watch_status, source, **spec_fields):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, source)
    status = await watch_status(name)
    agent = await start_agent(node)
    spec = WorkloadSpec(name=name, artifact=name, **spec_fields)
    await place(node, spec, f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")
    return agent, name, status


async def test_raising_function_returns_user_error(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    _, name, _ = await _running(unique, start_agent, place, push_artifact, watch_status, function_source)

    failed = await call(name, {"action": "raise", "value": 42})
    served = await call(name, {"after": "error"})

    assert failed["ok"] is False
    assert failed["error"]["code"] == "user_error"
    assert failed["error"]["error_type"] == "ValueError"
    assert failed["error"]["message"] == "bad input: 42"
    assert "Traceback" not in failed["error"]["message"]
    assert served["ok"] is True
    assert served["result"]["echo"] == {"after": "error"}


async def test_invalid_json_input_returns_bad_request(unique, nc, start_agent, place, push_artifact, watch_status, function_source):
    import json

    from continuum.shared import subjects

    _, name, _ = await _running(unique, start_agent, place, push_artifact, watch_status, function_source)

    reply = json.loads((await nc.request(subjects.function(name), b"{not json", timeout=5)).data)

    assert reply["ok"] is False
    assert reply["error"]["code"] == "bad_request"


async def test_async_function_is_awaited(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    _, name, _ = await _running(
        unique, start_agent, place, push_artifact, watch_status, function_source, entrypoint="main:async_handler"
    )

    reply = await call(name, {"n": 1})

    assert reply["result"] == {"async": True, "echo": {"n": 1}}


async def test_hanging_function_is_cut_at_timeout(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    agent, name, _ = await _running(unique, start_agent, place, push_artifact, watch_status, function_source, timeout_s=0.5)
    hung_pid_holder = agent.replicas[f"{name}-r1"].runtime.pids  # type: ignore[union-attr]

    reply = await call(name, {"action": "hang"})
    after = await call(name, {"action": "echo"})

    assert reply["ok"] is False
    assert reply["error"]["code"] == "timeout"
    assert "0.5s" in reply["error"]["message"]
    assert after["ok"] is True
    assert after["result"]["pid"] not in hung_pid_holder


async def test_crashing_worker_is_restarted(unique, start_agent, place, push_artifact, watch_status, call, function_source):
    _, name, _ = await _running(unique, start_agent, place, push_artifact, watch_status, function_source)
    first_pid = (await call(name, {}))["result"]["pid"]

    crashed = await call(name, {"action": "crash"})
    after = await call(name, {})

    assert crashed["ok"] is False
    assert crashed["error"]["code"] == "internal"
    assert "exited with code 3" in crashed["error"]["message"]
    assert after["ok"] is True
    assert after["result"]["pid"] != first_pid


async def test_bad_entrypoint_fails_replica(unique, start_agent, place, push_artifact, watch_status, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    await start_agent(node)

    await place(node, WorkloadSpec(name=name, artifact=name, entrypoint="main:no_such_function"), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert "no_such_function" in failed.reason


async def test_digest_mismatch_fails_replica(unique, start_agent, place, push_artifact, watch_status, function_source):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    await start_agent(node)

    await place(node, WorkloadSpec(name=name, artifact=name, artifact_digest="sha256:" + "0" * 64), f"{name}-r1")
    failed = await status.wait_for(f"{name}-r1", "failed")

    assert "digest" in failed.reason


async def test_wasm_module_answers_invocation(unique, start_agent, place, push_artifact, watch_status, call):
    _, name, _ = await _running(unique, start_agent, place, push_artifact, watch_status, wasmtime.wat2wasm(ECHO_WAT), runtime="wasm")

    reply = await call(name, {"text": "hi"})

    assert reply["ok"] is True
    assert reply["result"] == {"echo": {"text": "hi"}}


async def test_looping_wasm_module_is_stopped(unique, start_agent, place, push_artifact, watch_status, call):
    _, name, _ = await _running(
        unique, start_agent, place, push_artifact, watch_status, wasmtime.wat2wasm(LOOP_WAT), runtime="wasm", timeout_s=0.3
    )

    reply = await call(name, {})
    again = await call(name, {})

    assert reply["ok"] is False
    assert reply["error"]["code"] == "timeout"
    assert again["error"]["code"] == "timeout"


async def test_looping_wasm_module_runs_out_of_fuel(unique, start_agent, place, push_artifact, watch_status, call):
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, wasmtime.wat2wasm(LOOP_WAT))
    status = await watch_status(name)
    await start_agent(node, wasm_fuel=1_000_000)
    await place(node, WorkloadSpec(name=name, artifact=name, runtime="wasm", timeout_s=30), f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")

    reply = await call(name, {})

    assert reply["error"]["code"] == "timeout"
    assert "fuel" in reply["error"]["message"]


@pytest.mark.parametrize("runtime", ["function", "wasm"])
async def test_idle_replica_scales_to_zero_and_cold_starts(unique, start_agent, place, push_artifact, watch_status, call, function_source, runtime):
    source = function_source if runtime == "function" else wasmtime.wat2wasm(ECHO_WAT)
    agent, name, status = await _running(
        unique, start_agent, place, push_artifact, watch_status, source, runtime=runtime, idle_timeout_s=0.5
    )
    replica = agent.replicas[f"{name}-r1"]

    idle = await status.wait_for(f"{name}-r1", "idle")
    pids_while_idle = list(getattr(replica.runtime, "pids", []))
    replies = await asyncio.gather(call(name, {"n": 1}), call(name, {"n": 2}))
    running_again = await status.wait_for(f"{name}-r1", "running", count=2)

    assert "no invocation" in idle.reason
    assert pids_while_idle == []
    assert all(reply["ok"] for reply in replies)
    assert any(reply["cold_start_ms"] for reply in replies)
    assert running_again.cold_start_ms is not None and running_again.cold_start_ms > 0
    assert status.states(f"{name}-r1")[-3:] == ["idle", "starting", "running"]


async def test_overload_beyond_queue_is_rejected(unique, start_agent, place, push_artifact, watch_status, call, function_source, nc):
    from continuum.shared import subjects
    from continuum.shared.schemas import encode
    from continuum.shared.schemas.workload import ScaleRequest

    scale_requests = []

    async def _handle_autoscale(msg) -> None:
        scale_requests.append(msg.data)
        await msg.respond(encode({"ok": True}))

    responder = await nc.subscribe(subjects.api("autoscale"), cb=_handle_autoscale)
    node, name = f"node-{unique}", f"fn-{unique}"
    await push_artifact(name, function_source)
    status = await watch_status(name)
    await start_agent(node, max_queued_invocations=1)
    await place(node, WorkloadSpec(name=name, artifact=name, concurrency=1), f"{name}-r1")
    await status.wait_for(f"{name}-r1", "running")

    replies = await asyncio.gather(*(call(name, {"action": "sleep", "seconds": 0.5}) for _ in range(4)))
    await responder.unsubscribe()

    codes = sorted(reply["error"]["code"] if not reply["ok"] else "ok" for reply in replies)
    assert codes.count("ok") == 2
    assert codes.count("overloaded") == 2
    assert scale_requests
    assert ScaleRequest.__name__ and b'"workload":"%s"' % name.encode() in scale_requests[0]

"""Edge agent benchmarks: warm invocation latency and scale-from-zero latency.

Everything runs against a throwaway nats-server on loopback. The agent runs
in this process (the same event loop as the client), and so does the raw
nats-py echo responder used as the baseline, so both sides pay the same
client overhead. Warm latency is one request at a time to a trivial Python
function; scale-from-zero latency is the client-side time of the first
invocation after the replica went idle, which includes starting a worker
process (Python) or loading the cached compiled module (WASM).
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import wasmtime

from bench.harness import Result, nats_server, summarize_ms
from continuum.services.agent.service import AgentService
from continuum.shared import bus, subjects
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas.workload import Placement, WorkloadSpec
from continuum.shared.topology import provision

TRIVIAL_FUNCTION = b"def handler(event):\n    return event\n"

ECHO_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1024))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
    (i32.store (i32.const 4) (i32.load (i32.const 8)))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 12)))))
"""

PAYLOAD = b'{"n": 1}'


async def _time_requests(nc: bus.NATS, subject: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await nc.request(subject, PAYLOAD, timeout=10)
        samples.append(time.perf_counter() - started)
    return samples


async def _place(js: bus.JetStreamContext, node: str, spec: WorkloadSpec, generation: int) -> None:
    placement = Placement(
        action="start", node_id=node, workload=spec.name, replica_id=f"{spec.name}-r1", epoch=1, generation=generation, spec=spec
    )
    await bus.publish(js, subjects.placement(node), placement, source="continuum/bench")


async def _wait_state(agent: AgentService, replica_id: str, state: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replica = agent.replicas.get(replica_id)
        if replica is not None and replica.state == state:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"replica {replica_id} did not reach {state} within {timeout}s")


async def _scale_from_zero(nc: bus.NATS, agent: AgentService, name: str, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        await _wait_state(agent, f"{name}-r1", "idle")
        started = time.perf_counter()
        await nc.request(subjects.function(name), PAYLOAD, timeout=30)
        samples.append(time.perf_counter() - started)
    return samples


async def run(quick: bool) -> list[Result]:
    warm_count = 300 if quick else 3000
    cold_rounds = 5 if quick else 20
    with nats_server() as server, tempfile.TemporaryDirectory(prefix="continuum-bench-agent-") as state:
        settings = Settings(nats=NatsSettings(url=server.url))
        nc = await bus.connect(settings, name="bench-agent")
        js = bus.jetstream(nc, settings)
        await provision(js, settings.jetstream)
        store = await js.object_store("ctm-artifacts")
        await store.put("bench-py", TRIVIAL_FUNCTION)
        await store.put("bench-wasm", bytes(wasmtime.wat2wasm(ECHO_WAT)))

        async def _echo(msg) -> None:
            await msg.respond(msg.data)

        await nc.subscribe("bench.echo", cb=_echo)
        node = "bench-node"
        agent = AgentService({"node_id": node, "state_dir": state, "telemetry_interval_s": 1.0})
        await agent.start(ServiceContext(name="agent", settings=settings, nc=nc, js=js))
        try:
            await _place(js, node, WorkloadSpec(name="bench-warm", artifact="bench-py"), 1)
            await _place(js, node, WorkloadSpec(name="bench-cold", artifact="bench-py", idle_timeout_s=0.2), 2)
            await _place(js, node, WorkloadSpec(name="bench-wasm", artifact="bench-wasm", runtime="wasm", idle_timeout_s=0.2), 3)
            await _wait_state(agent, "bench-warm-r1", "running")

            await _time_requests(nc, "bench.echo", 50)
            await _time_requests(nc, subjects.function("bench-warm"), 50)
            echo = summarize_ms(await _time_requests(nc, "bench.echo", warm_count))
            warm = summarize_ms(await _time_requests(nc, subjects.function("bench-warm"), warm_count))
            cold_py = summarize_ms(await _scale_from_zero(nc, agent, "bench-cold", cold_rounds))
            cold_wasm = summarize_ms(await _scale_from_zero(nc, agent, "bench-wasm", cold_rounds))
        finally:
            await agent.stop()
            await nc.close()

    return [
        Result(
            "warm invocation p50", warm["p50"], "ms", "nats-py request/reply echo p50", echo["p50"],
            goal="ratio <= 1.5", met=warm["p50"] <= 1.5 * echo["p50"],
            notes=f"{warm_count} sequential requests to a Python function that returns its input",
        ),
        Result("warm invocation p99", warm["p99"], "ms", "nats-py request/reply echo p99", echo["p99"]),
        Result(
            "scale from zero, Python p50", cold_py["p50"], "ms", goal="< 100 ms", met=cold_py["p50"] < 100,
            notes=f"{cold_rounds} rounds; first invocation after idle, includes starting the worker process",
            extra={"p99": cold_py["p99"]},
        ),
        Result(
            "scale from zero, WASM p50", cold_wasm["p50"], "ms", goal="< 10 ms", met=cold_wasm["p50"] < 10,
            notes=f"{cold_rounds} rounds; first invocation after idle, includes loading the cached compiled module",
            extra={"p99": cold_wasm["p99"]},
        ),
    ]

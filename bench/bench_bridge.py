"""Webhook bridge: accepted webhooks per second and p99 latency, each 202 sent after the JetStream PubAck.

The bridge runs as its own process (`python -m continuum.services.bridge`)
at log level INFO, so every request writes its access-log line (to a
temporary file), against a throwaway nats-server. The load generator is
`wrk` when it is on PATH (`apt-get install wrk`): a separate C process that
takes little CPU from the bridge on a small machine. It replays one signed
GitHub-shaped body with a fresh `X-GitHub-Delivery` per request, since the
GitHub signature covers only the body. Without wrk, an aiohttp client in
this process sends a fixed number of requests instead. Both keep
CONCURRENCY requests in flight. With wrk, a third result drives the same
bridge with the aiohttp client as well, so the two generators can be
compared in one run: on a shared 2-core machine their ratio ranged from
0.4 to 1.2 between runs, so a single pair shows little.

The baseline is raw nats-py JetStream publishes of the same body to the same
stream, with the same concurrency, in the same run. Each result's notes name
the generator, the bridge's CPU time per accepted webhook and the machine's
load average, because the figures move with other work on a shared machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats

from bench.harness import Result, Timer, nats_server, summarize_ms

SECRET = "bench-secret"
CONCURRENCY = 64
BODY = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "commits": [{"id": "a" * 40}]}).encode()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()

# wrk script: one signed body, a unique delivery id per request, and a JSON summary that counts every non-202 response.
WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
function init(args)
  prefix = args[1] .. "-" .. tid .. "-"
  counter = 0
  not_accepted = 0
  wrk.method = "POST"
  wrk.body = os.getenv("BENCH_HOOK_BODY")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = "push"
  wrk.headers["X-Hub-Signature-256"] = os.getenv("BENCH_HOOK_SIGNATURE")
end
function request()
  counter = counter + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. counter
  return wrk.format(nil, "/hooks/github")
end
function response(status, headers, body)
  if status ~= 202 then not_accepted = not_accepted + 1 end
end
function done(summary, latency, requests)
  local rejected = 0
  for _, thread in ipairs(threads) do rejected = rejected + thread:get("not_accepted") end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "not_accepted": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, rejected, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load_average() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


async def _start_bridge(nats_url: str, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTINUUM_NATS_URL": nats_url,
        "CONTINUUM_LOG_LEVEL": "INFO",
        "CONTINUUM_BRIDGE_PORT": str(port),
        "CONTINUUM_BRIDGE_DELIVERIES_ENABLED": "false",
        "CONTINUUM_BRIDGE_SOURCES": json.dumps({"github": {"scheme": "github", "secrets": [SECRET]}}),
    }
    env.pop("CONTINUUM_CONFIG", None)
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "continuum.services.bridge"], env=env, stderr=log)
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the bridge exited with code {process.returncode} before it was ready:\n{tail}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.terminate()
    raise RuntimeError("the bridge was not ready after 30 s")


async def _bounded(count: int, operation) -> tuple[float, list[float], int]:
    """Run `operation(i)` `count` times, CONCURRENCY at a time; return (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    next_index = 0

    async def worker() -> None:
        nonlocal next_index, failures
        while next_index < count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            if await operation(index):
                latencies.append(time.perf_counter() - started)
            else:
                failures += 1

    timer = Timer()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return timer.elapsed, latencies, failures


class Load:
    """Measurements of one generator run: accepted rate, latency percentiles in ms, failures and accepted count."""

    def __init__(self, rate: float, p50_ms: float, p99_ms: float, failures: int, accepted: int) -> None:
        self.rate = rate
        self.p50_ms = p50_ms
        self.p99_ms = p99_ms
        self.failures = failures
        self.accepted = accepted


async def _run_wrk(wrk: str, port: int, seconds: int, run_id: str, script: Path) -> Load:
    command = [
        wrk, "-t1", f"-c{CONCURRENCY}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
        f"http://127.0.0.1:{port}", "--", run_id,
    ]
    env = {**os.environ, "BENCH_HOOK_BODY": BODY.decode(), "BENCH_HOOK_SIGNATURE": SIGNATURE}
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await process.communicate()
    summary_line = next((line for line in stdout.decode().splitlines() if line.startswith("{")), None)
    if process.returncode != 0 or summary_line is None:
        raise RuntimeError(f"wrk failed with code {process.returncode}: {stderr.decode().strip() or stdout.decode().strip()}")
    summary = json.loads(summary_line)
    failures = summary["not_accepted"] + summary["socket_errors"]
    accepted = summary["requests"] - summary["not_accepted"]
    return Load(
        accepted / (summary["duration_us"] / 1e6), summary["p50_us"] / 1000, summary["p99_us"] / 1000, failures, accepted
    )


async def _load_with_wrk(wrk: str, port: int, seconds: int) -> Load:
    with tempfile.TemporaryDirectory(prefix="continuum-bench-wrk-") as folder:
        script = Path(folder) / "hooks.lua"
        script.write_text(WRK_SCRIPT)
        stamp = str(time.time_ns())
        await _run_wrk(wrk, port, 1, f"warm-{stamp}", script)
        return await _run_wrk(wrk, port, seconds, f"run-{stamp}", script)


async def _load_with_aiohttp(port: int, count: int) -> Load:
    url = f"http://127.0.0.1:{port}/hooks/github"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    stamp = str(time.time_ns())
    async with aiohttp.ClientSession(connector=connector) as session:

        def sender(run_id: str):
            async def send(index: int) -> bool:
                headers = {
                    "Content-Type": "application/json",
                    "X-GitHub-Event": "push",
                    "X-GitHub-Delivery": f"{run_id}-{index}",
                    "X-Hub-Signature-256": SIGNATURE,
                }
                async with session.post(url, data=BODY, headers=headers) as response:
                    await response.read()
                    return response.status == 202

            return send

        # Warm-up: open the pooled connections before measuring.
        await _bounded(min(200, count), sender(f"warm-{stamp}"))
        seconds, latencies, failures = await _bounded(count, sender(f"run-{stamp}"))
    latency_ms = summarize_ms(latencies)
    return Load(len(latencies) / seconds, latency_ms["p50"], latency_ms["p99"], failures, len(latencies))


async def _load_raw_publish(nats_url: str, count: int, run_id: str) -> tuple[float, list[float], int]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()

    async def publish(index: int) -> bool:
        await js.publish("ctm.hook.raw.push", BODY, headers={"Nats-Msg-Id": f"raw-{run_id}-{index}"})
        return True

    try:
        await _bounded(min(200, count), publish)
        return await _bounded(count, publish)
    finally:
        await nc.close()


async def run(quick: bool) -> list[Result]:
    count = 2_000 if quick else 20_000
    seconds = 3 if quick else 10
    wrk = shutil.which("wrk")
    port = _free_port()
    load_before = _load_average()
    with nats_server() as server, tempfile.TemporaryDirectory(prefix="continuum-bench-bridge-") as folder:
        bridge = await _start_bridge(server.url, port, Path(folder) / "bridge.log")
        try:
            raw_seconds, raw_latencies, _ = await _load_raw_publish(server.url, count, "r")
            cpu_before = _cpu_seconds(bridge.pid)
            if wrk:
                load = await _load_with_wrk(wrk, port, seconds)
                generator = f"wrk (1 thread, {seconds} s) in its own process"
            else:
                load = await _load_with_aiohttp(port, count)
                generator = f"aiohttp client in the bench process ({count} requests; wrk not on PATH)"
            cpu_per_hook_us = (_cpu_seconds(bridge.pid) - cpu_before) / max(load.accepted, 1) * 1e6
            # The same bridge driven by the in-process aiohttp client, to show what that generator costs.
            in_process = await _load_with_aiohttp(port, count // 4) if wrk else None
        finally:
            bridge.terminate()
            bridge.wait(15)

    raw_rate = count / raw_seconds
    raw_ms = summarize_ms(raw_latencies)
    setup = (
        f"generator {generator}, concurrency {CONCURRENCY}, {len(BODY)}-byte body, bridge in its own process "
        f"with access log on, loopback; load average {load_before} before the run"
    )
    results = [
        Result(
            "accepted webhooks/s (202 after PubAck)",
            load.rate,
            "req/s",
            baseline_name="raw JetStream publish/s",
            baseline=raw_rate,
            goal=">= 3000/s",
            met=load.rate >= 3000 and load.failures == 0,
            notes=f"{setup}; {load.failures} requests not answered 202; bridge CPU {cpu_per_hook_us:.0f} us per accepted webhook",
            extra={"bridge_cpu_us_per_webhook": cpu_per_hook_us, "accepted": load.accepted},
        ),
        Result(
            "webhook p99 latency",
            load.p99_ms,
            "ms",
            baseline_name="raw JetStream publish p99",
            baseline=raw_ms["p99"],
            goal="< 20 ms",
            met=load.p99_ms < 20,
            notes=f"{generator}, concurrency {CONCURRENCY}; p50 {load.p50_ms:.2f} ms; raw publish p50 {raw_ms['p50']:.2f} ms",
        ),
    ]
    if in_process is not None:
        results.append(
            Result(
                "accepted webhooks/s, aiohttp generator in the bench process",
                in_process.rate,
                "req/s",
                baseline_name="accepted webhooks/s with wrk",
                baseline=load.rate,
                notes=(
                    f"{count // 4} requests, concurrency {CONCURRENCY}, same bridge and run; the generator shares the "
                    f"2 cores with the bridge and nats-server; p99 {in_process.p99_ms:.1f} ms; "
                    f"{in_process.failures} requests not answered 202"
                ),
            )
        )
    return results

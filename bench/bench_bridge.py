"""Webhook bridge: accepted webhooks per second and p99 latency, each answered after the JetStream PubAck.

The bridge runs as its own process (`python -m continuum.services.bridge`)
against a throwaway nats-server. A load generator in this process POSTs
signed GitHub-shaped webhooks over loopback with an aiohttp client, a fixed
number of requests with bounded concurrency. The baseline is raw nats-py
JetStream publishes of the same body to the same stream, with the same
count and concurrency, in the same run.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time

import aiohttp
import nats

from bench.harness import Result, Timer, nats_server, summarize_ms

SECRET = "bench-secret"
CONCURRENCY = 64
BODY = json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "acme/app"}, "commits": [{"id": "a" * 40}]}).encode()
SIGNATURE = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start_bridge(nats_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CONTINUUM_NATS_URL": nats_url,
        "CONTINUUM_LOG_LEVEL": "WARNING",
        "CONTINUUM_BRIDGE_PORT": str(port),
        "CONTINUUM_BRIDGE_DELIVERIES_ENABLED": "false",
        "CONTINUUM_BRIDGE_SOURCES": json.dumps({"github": {"scheme": "github", "secrets": [SECRET]}}),
    }
    env.pop("CONTINUUM_CONFIG", None)
    process = subprocess.Popen([sys.executable, "-m", "continuum.services.bridge"], env=env)
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError(f"the bridge exited with code {process.returncode} before it was ready")
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


async def _load_webhooks(port: int, count: int, run_id: str) -> tuple[float, list[float], int]:
    url = f"http://127.0.0.1:{port}/hooks/github"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:

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

        # Warm-up: open the pooled connections before measuring.
        await _bounded(min(200, count), send)
        return await _bounded(count, send)


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
    port = _free_port()
    with nats_server() as server:
        bridge = await _start_bridge(server.url, port)
        try:
            raw_seconds, raw_latencies, _ = await _load_raw_publish(server.url, count, "r")
            hook_seconds, hook_latencies, failures = await _load_webhooks(port, count, "w")
        finally:
            bridge.terminate()
            bridge.wait(15)

    raw_rate = count / raw_seconds
    hook_rate = len(hook_latencies) / hook_seconds
    hook_ms = summarize_ms(hook_latencies)
    raw_ms = summarize_ms(raw_latencies)
    setup = f"{count} requests, concurrency {CONCURRENCY}, {len(BODY)}-byte body, bridge in its own process, loopback"
    return [
        Result(
            "accepted webhooks/s (202 after PubAck)",
            hook_rate,
            "req/s",
            baseline_name="raw JetStream publish/s",
            baseline=raw_rate,
            goal=">= 3000/s",
            met=hook_rate >= 3000 and failures == 0,
            notes=f"{setup}; {failures} requests not answered 202",
        ),
        Result(
            "webhook p99 latency",
            hook_ms["p99"],
            "ms",
            baseline_name="raw JetStream publish p99",
            baseline=raw_ms["p99"],
            goal="< 20 ms",
            met=hook_ms["p99"] < 20,
            notes=f"p50 {hook_ms['p50']:.2f} ms; raw publish p50 {raw_ms['p50']:.2f} ms",
        ),
    ]

"""A raw nats-py responder that returns a fixed payload; the floor for request/reply between two processes.

Run by bench_vectordb as `python -m bench._vectordb_echo URL SUBJECT REPLY_BYTES [WAIT_MS]`.
With WAIT_MS the responder sleeps that long before it replies, so that the
caller and nats-server are idle as long as during a real query. It reports
the seconds it spent in the `x-handled-s` header for the caller to subtract.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import nats


async def main(url: str, subject: str, reply_bytes: int, wait_ms: float) -> None:
    nc = await nats.connect(url)
    payload = b"x" * reply_bytes

    async def respond(msg: nats.aio.msg.Msg) -> None:
        started = time.perf_counter()
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000.0)
        await nc.publish(msg.reply, payload, headers={"x-handled-s": repr(time.perf_counter() - started)})

    await nc.subscribe(subject, cb=respond)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else 0.0))

"""A raw nats-py responder that returns a fixed payload; the floor for request/reply between two processes.

Run by bench_vectordb as `python -m bench._vectordb_echo URL SUBJECT REPLY_BYTES`.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import nats


async def main(url: str, subject: str, reply_bytes: int) -> None:
    nc = await nats.connect(url)
    payload = b"x" * reply_bytes

    async def respond(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(payload)

    await nc.subscribe(subject, cb=respond)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))

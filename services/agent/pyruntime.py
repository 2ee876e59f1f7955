"""The Python function runtime: a pool of worker processes per replica.

Each worker runs one invocation at a time, so a hang or crash touches only
that invocation. A worker that exceeds the timeout is killed; one that
crashes is replaced. The pool grows lazily up to the replica's concurrency
and keeps at least one worker warm while the replica runs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
from pathlib import Path

from continuum.services.agent.errors import InvocationFailure, ReplicaStartError

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")

# Variables the agent never passes to user code: its own settings and credentials.
_PRIVATE_ENV_PREFIXES = ("CONTINUUM_", "AWS_", "NATS_")


class WorkerExited(Exception):
    """The worker process ended while the agent expected a frame."""

    def __init__(self, returncode: int | None) -> None:
        super().__init__(f"worker exited with code {returncode}")
        self.returncode = returncode


def worker_environment(extra: dict[str, str]) -> dict[str, str]:
    """Return the agent's environment without its private variables, plus the workload's `env`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_PRIVATE_ENV_PREFIXES)}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerProcess:
    """One worker subprocess speaking the frame protocol of `worker.py`."""

    def __init__(self, directory: Path, module: str, function: str, env: dict[str, str]) -> None:
        self.directory = directory
        self.module = module
        self.function = function
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self, timeout: float) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            str(WORKER_SCRIPT),
            str(self.directory),
            self.module,
            self.function,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=str(self.directory),
        )
        try:
            status, body = await asyncio.wait_for(self._read_frame(), timeout)
        except asyncio.TimeoutError as exc:
            self.kill()
            raise ReplicaStartError(f"the worker did not import {self.module} within {timeout:.0f}s") from exc
        except WorkerExited as exc:
            raise ReplicaStartError(f"the worker exited with code {exc.returncode} before it was ready") from exc
        if status != "ready":
            error = json.loads(body)
            await self.stop()
            raise ReplicaStartError(
                f"cannot load {self.module}:{self.function}: {error['error_type']}: {error['message']}"
            )

    async def call(self, payload: bytes) -> tuple[str, bytes]:
        """Send one input and return (`ok` or `err`, body); raises WorkerExited when the process dies."""
        assert self.process is not None and self.process.stdin is not None
        request_id = str(next(self._ids))
        try:
            self.process.stdin.write(f"{request_id} {len(payload)}\n".encode() + payload)
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise WorkerExited(await self.process.wait()) from exc
        status, body = await self._read_frame()
        return status, body

    async def _read_frame(self) -> tuple[str, bytes]:
        assert self.process is not None and self.process.stdout is not None
        try:
            header = await self.process.stdout.readline()
            if not header:
                raise WorkerExited(await self.process.wait())
            _, status, length = header.decode().split()
            body = await self.process.stdout.readexactly(int(length))
        except asyncio.IncompleteReadError as exc:
            raise WorkerExited(await self.process.wait()) from exc
        return status, body

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()

    async def stop(self, timeout: float = 2.0) -> None:
        """Close stdin so the worker exits by itself; kill it after `timeout` seconds."""
        if self.process is None or self.process.returncode is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            await self.process.wait()


class PythonFunction:
    """The worker pool of one replica of a Python function."""

    def __init__(
        self, directory: Path, entrypoint: str, *, concurrency: int, env: dict[str, str], start_timeout: float
    ) -> None:
        module, _, function = entrypoint.partition(":")
        self.directory = directory
        self.module = module
        self.function = function or "handler"
        self.concurrency = max(1, concurrency)
        self.env = worker_environment(env)
        self.start_timeout = start_timeout
        self._idle: list[WorkerProcess] = []
        self._busy: set[WorkerProcess] = set()
        self._refill: asyncio.Task[None] | None = None

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in [*self._idle, *self._busy] if worker.pid is not None]

    async def start(self) -> None:
        self._idle.append(await self._spawn())

    async def _spawn(self) -> WorkerProcess:
        worker = WorkerProcess(self.directory, self.module, self.function, self.env)
        await worker.start(self.start_timeout)
        logger.debug("worker %s started for %s:%s", worker.pid, self.module, self.function)
        return worker

    async def _acquire(self) -> WorkerProcess:
        if self._idle:
            return self._idle.pop()
        if self._refill is not None and not self._refill.done():
            await asyncio.shield(self._refill)
            if self._idle:
                return self._idle.pop()
        try:
            return await self._spawn()
        except ReplicaStartError as exc:
            logger.error("worker start failed: %s", exc)
            raise InvocationFailure("unavailable", "the function's worker could not be started") from exc

    async def invoke(self, payload: bytes, timeout: float) -> bytes:
        """Run one invocation and return its JSON result; raises InvocationFailure."""
        worker = await self._acquire()
        self._busy.add(worker)
        try:
            status, body = await asyncio.wait_for(worker.call(payload), timeout)
        except asyncio.TimeoutError as exc:
            self._busy.discard(worker)
            worker.kill()
            logger.warning("invocation timed out after %.1fs; killed worker %s", timeout, worker.pid)
            self._keep_one_warm()
            raise InvocationFailure("timeout", f"the function did not return within {timeout:g}s") from exc
        except WorkerExited as exc:
            self._busy.discard(worker)
            logger.warning("worker %s exited with code %s during an invocation; replacing it", worker.pid, exc.returncode)
            self._keep_one_warm()
            raise InvocationFailure(
                "internal", f"the function's worker process exited with code {exc.returncode}; it was restarted"
            ) from exc
        except asyncio.CancelledError:
            self._busy.discard(worker)
            worker.kill()
            raise

        self._busy.discard(worker)
        self._idle.append(worker)
        if status == "ok":
            return body
        error = json.loads(body)
        raise InvocationFailure(error["code"], error["message"], error_type=error["error_type"])

    def _keep_one_warm(self) -> None:
        if self._idle or self._busy or (self._refill is not None and not self._refill.done()):
            return
        self._refill = asyncio.create_task(self._replace_worker())

    async def _replace_worker(self) -> None:
        try:
            self._idle.append(await self._spawn())
        except ReplicaStartError as exc:
            logger.error("replacement worker failed to start: %s", exc)

    async def stop(self) -> None:
        if self._refill is not None:
            self._refill.cancel()
        workers = [*self._idle, *self._busy]
        self._idle.clear()
        self._busy.clear()
        await asyncio.gather(*(worker.stop() for worker in workers), return_exceptions=True)

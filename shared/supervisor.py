"""Run each service as its own child process, restarting crashed ones with backoff.

Children run `python -m continuum.services.<name>` in their own process
group, so Ctrl-C reaches only the supervisor, which then stops them in
order with SIGTERM and a deadline. On Linux each child also gets
PR_SET_PDEATHSIG, so a killed supervisor never leaves children behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from continuum.shared.process import die_with_parent

logger = logging.getLogger(__name__)

@dataclass
class ChildProcess:
    """One supervised service and its restart history."""

    name: str
    command: list[str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    last_exit: int | None = None
    backoff: float = 1.0
    history: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    """Start, watch and stop a set of service processes.

    A child that exits while the supervisor runs is restarted after a delay
    that doubles per quick crash (1 s up to 30 s) and resets once the child
    has stayed up for a minute.
    """

    MAX_BACKOFF = 30.0
    STABLE_AFTER = 60.0

    def __init__(self, services: list[str], *, env: Mapping[str, str], log_dir: Path, extra_args: Mapping[str, list[str]] | None = None) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.children = {
            name: ChildProcess(
                name=name,
                command=[sys.executable, "-m", f"continuum.services.{name}", *(extra_args or {}).get(name, [])],
                log_path=log_dir / f"{name}.log",
            )
            for name in services
        }
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children.values():
            await self._spawn(child)
            self._watchers.append(asyncio.create_task(self._watch(child)))

    async def _spawn(self, child: ChildProcess) -> None:
        log = child.log_path.open("ab")
        child.process = await asyncio.create_subprocess_exec(
            *child.command,
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        child.started_at = time.monotonic()
        logger.info("started %s (pid %d), log %s", child.name, child.process.pid, child.log_path)

    async def _watch(self, child: ChildProcess) -> None:
        while not self._stopping:
            assert child.process is not None
            code = await child.process.wait()
            child.last_exit = code
            if self._stopping:
                return
            uptime = time.monotonic() - child.started_at
            if uptime >= self.STABLE_AFTER:
                child.backoff = 1.0
            reason = f"exited with code {code} after {uptime:.1f}s"
            child.history.append(reason)
            logger.warning("%s %s; restarting in %.0fs (see %s)", child.name, reason, child.backoff, child.log_path)
            await asyncio.sleep(child.backoff)
            child.backoff = min(child.backoff * 2, self.MAX_BACKOFF)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    async def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child (in reverse start order), then SIGKILL whatever is left after `timeout`."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        children = [child for child in reversed(list(self.children.values())) if child.running]
        for child in children:
            logger.info("stopping %s (pid %d)", child.name, child.pid)
            _signal_group(child, signal.SIGTERM)

        deadline = time.monotonic() + timeout
        for child in children:
            assert child.process is not None
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                await asyncio.wait_for(child.process.wait(), remaining)
            except asyncio.TimeoutError:
                logger.warning("%s did not stop within %.0fs; killing it", child.name, timeout)
                _signal_group(child, signal.SIGKILL)
                await child.process.wait()
        logger.info("all services stopped")


def _signal_group(child: ChildProcess, signum: int) -> None:
    if child.pid is None:
        return
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass

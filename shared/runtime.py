"""The process wrapper every service runs in.

`run_service` sets up logging and tracing, connects to NATS, provisions the
topology (idempotent, so a service can run alone), starts the service, and
stops it on SIGTERM or SIGINT within a time budget before draining the
connection. A service only implements the `Service` protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from continuum.shared import bus
from continuum.shared.config import Settings, load_settings
from continuum.shared.errors import ContinuumError
from continuum.shared.logs import setup_logging
from continuum.shared.topology import provision
from continuum.shared.tracing import setup_tracing

logger = logging.getLogger(__name__)

# Names of the services `continuum up` starts, in start order.
SERVICE_NAMES = ("scheduler", "agent", "dataprep", "vectordb", "guardrails", "bridge", "workflow")


@dataclass
class ServiceContext:
    """What a running service gets: settings, the connection, and where its config file is."""

    name: str
    settings: Settings
    nc: NATS
    js: JetStreamContext
    config_path: str | None = None
    instance_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")

    @property
    def source(self) -> str:
        """CloudEvents `source` for events this process publishes."""
        return f"continuum/{self.name}/{self.instance_id}"


class Service(Protocol):
    async def start(self, context: ServiceContext) -> None:
        """Start consumers and endpoints; return once the service is ready."""

    async def stop(self) -> None:
        """Stop taking new work and finish in-flight work."""


def service_argument_parser(name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"continuum service {name}", description=f"Run the Continuum {name} service.")
    parser.add_argument("--config", help="TOML config file (default: $CONTINUUM_CONFIG)")
    parser.add_argument("--nats-url", help="NATS server URL (default: $CONTINUUM_NATS_URL or nats://127.0.0.1:4222)")
    parser.add_argument("--stop-timeout", type=float, default=15.0, help="seconds to finish in-flight work on stop")
    return parser


async def serve(
    name: str,
    factory: Callable[[], Service],
    *,
    config_path: str | None = None,
    nats_url: str | None = None,
    stop_timeout: float = 15.0,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Run one service until `stop_event` is set or the process gets SIGTERM/SIGINT."""
    settings = load_settings(config_path)
    if nats_url:
        settings.nats.url = nats_url
    setup_logging(settings.log_level, settings.log_format, service=name)
    setup_tracing(name)

    stop_event = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop_event.set)
        except (NotImplementedError, RuntimeError):
            pass

    nc = await bus.connect(settings, name=f"continuum-{name}")
    js = bus.jetstream(nc, settings)
    await provision(js, settings.jetstream)

    context = ServiceContext(name=name, settings=settings, nc=nc, js=js, config_path=config_path)
    service = factory()
    logger.info("starting service %s", name)
    try:
        await service.start(context)
        logger.info("service %s running", name)
        await stop_event.wait()
        logger.info("stopping service %s", name)
        try:
            await asyncio.wait_for(service.stop(), stop_timeout)
        except asyncio.TimeoutError:
            logger.warning("service %s did not stop within %.0fs", name, stop_timeout)
    finally:
        try:
            await asyncio.wait_for(nc.drain(), 5.0)
        except Exception:  # noqa: BLE001 - the process is exiting anyway
            logger.debug("drain failed on exit", exc_info=True)
        logger.info("service %s stopped", name)


def run_service(name: str, factory: Callable[[], Service], argv: list[str] | None = None) -> int:
    """Entry point for `python -m continuum.services.<name>` and `continuum service <name>`."""
    args = service_argument_parser(name).parse_args(argv)
    try:
        asyncio.run(serve(name, factory, config_path=args.config, nats_url=args.nats_url, stop_timeout=args.stop_timeout))
    except ContinuumError as exc:
        logging.getLogger(name).error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0

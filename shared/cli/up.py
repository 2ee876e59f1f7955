"""`continuum up`: the whole platform on one machine, until Ctrl-C."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
from pathlib import Path
from urllib.parse import urlparse

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from continuum.shared import bus
from continuum.shared.cli import common
from continuum.shared.cli.demo import run_demo
from continuum.shared.cli.output import console
from continuum.shared.cli.status import PlatformStatus, poll
from continuum.shared.errors import ContinuumError
from continuum.shared.logs import setup_logging
from continuum.shared.natsserver import EmbeddedNatsServer, is_reachable
from continuum.shared.runtime import SERVICE_NAMES
from continuum.shared.supervisor import Supervisor
from continuum.shared.topology import provision

logger = logging.getLogger(__name__)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def available_services() -> list[str]:
    """Services of SERVICE_NAMES that this installation contains."""
    return [name for name in SERVICE_NAMES if _installed(f"continuum.services.{name}.__main__")]


def _log_to_file(path: Path) -> None:
    """Send this process's log records to `path`: lines on stderr would tear the live view."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setStream(path.open("a"))  # type: ignore[attr-defined]


def _status_table(supervisor: Supervisor, nats_url: str) -> Table:
    table = Table(title=f"Continuum on {nats_url}  (Ctrl-C to stop)", header_style="bold", expand=True)
    for column in ("service", "pid", "state", "restarts", "last exit"):
        table.add_column(column)
    for child in supervisor.children.values():
        state = "[green]running[/green]" if child.running else "[red]restarting[/red]"
        table.add_row(child.name, str(child.pid or ""), state, str(child.restarts), child.history[-1] if child.history else "")
    return table


async def _live_view(supervisor: Supervisor, nats_url: str, stop: asyncio.Event) -> None:
    """Show services, nodes, workloads, streams and events until `stop` is set."""
    async with common.connection() as (nc, js):
        status = PlatformStatus(nc, js)
        await status.start()
        poller = asyncio.create_task(poll(status, stop))
        try:
            with Live(console=console, refresh_per_second=2, screen=False) as view:
                while not stop.is_set():
                    view.update(Group(_status_table(supervisor, nats_url), status.render()))
                    try:
                        await asyncio.wait_for(stop.wait(), 0.5)
                    except asyncio.TimeoutError:
                        pass
        finally:
            poller.cancel()
            await status.stop()


async def _run_demo_then_wait(stop: asyncio.Event) -> None:
    try:
        await run_demo()
        console.print("\n[green]Demo finished.[/green] The platform keeps running; press Ctrl-C to stop it.")
    except ContinuumError as exc:
        console.print(f"[red]Demo failed:[/red] {escape(str(exc))}")


async def run_up(services: list[str] | None, state_dir: Path, live: bool, demo: bool = False) -> None:
    settings = common.settings()
    setup_logging(settings.log_level, settings.log_format, service="up")
    if live:
        _log_to_file(state_dir / "logs" / "up.log")
    embedded: EmbeddedNatsServer | None = None

    if await is_reachable(settings.nats.url):
        console.print(f"Using the NATS server at {settings.nats.url}")
    else:
        port = urlparse(settings.nats.url.split(",")[0]).port or 4222
        embedded = EmbeddedNatsServer(state_dir / "nats", port=port)
        await asyncio.to_thread(embedded.start)
        settings.nats.url = embedded.url
        console.print(f"Started an embedded nats-server with JetStream at {embedded.url} (data in {state_dir / 'nats'})")

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    supervisor: Supervisor | None = None
    try:
        nc = await bus.connect(settings, name="continuum-up")
        report = await provision(bus.jetstream(nc, settings), settings.jetstream)
        await nc.close()
        console.print(f"Provisioned JetStream: {len(report.changed)} created or updated, {len(report.actions) - len(report.changed)} unchanged")

        chosen = services or available_services()
        env = {**os.environ, "CONTINUUM_NATS_URL": settings.nats.url, "CONTINUUM_STATE_DIR": str(state_dir)}
        supervisor = Supervisor(chosen, env=env, log_dir=state_dir / "logs")
        await supervisor.start()
        console.print(f"Started services ({len(chosen)}): {', '.join(chosen)}; logs in {state_dir / 'logs'}")

        common.set_global_options(common._state["config"], settings.nats.url)
        if demo:
            demo_task = asyncio.create_task(_run_demo_then_wait(stop))
            await asyncio.wait([demo_task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            demo_task.cancel()
        if live and not stop.is_set():
            await _live_view(supervisor, settings.nats.url, stop)
        else:
            await stop.wait()
    finally:
        console.print("Stopping...")
        if supervisor is not None:
            await supervisor.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        console.print("Stopped.")


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        service: list[str] = typer.Option(None, "--service", "-s", help="Start only these services (repeatable)."),
        state_dir: Path = typer.Option(Path(".continuum"), "--state-dir", envvar="CONTINUUM_STATE_DIR", help="Directory for NATS data, logs and service state."),
        live: bool = typer.Option(True, "--live/--no-live", help="Show a live status view."),
        demo: bool = typer.Option(False, "--demo", help="Run the end-to-end demo once the services are up."),
    ) -> None:
        """Start NATS (embedded if none is reachable), provision, and run every service until Ctrl-C."""
        unknown = [name for name in service or [] if name not in SERVICE_NAMES]
        if unknown:
            raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(SERVICE_NAMES)}")
        common.run(run_up(service or None, state_dir.resolve(), live, demo))

"""The `continuum` command line.

Command groups for each service live in their own modules in this package
(listed in COMMAND_MODULES) and register themselves with `register(app)`.
They talk to the services over NATS only, with the shared schemas.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from continuum.shared import __version__
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, emit, fail
from continuum.shared.runtime import SERVICE_NAMES

app = typer.Typer(
    name="continuum",
    help="Continuum: an edge-cloud serverless platform for AI workloads on NATS JetStream.",
    no_args_is_help=True,
    add_completion=False,
)

# Modules of continuum.shared.cli that add command groups; a module that does not exist yet is skipped.
COMMAND_MODULES = ("up", "docs", "workloads", "agent", "ingest", "vector", "guard", "webhooks", "ask", "demo")


@app.callback()
def root(
    config: str = typer.Option(None, "--config", envvar="CONTINUUM_CONFIG", help="TOML config file."),
    nats_url: str = typer.Option(None, "--nats-url", help="NATS server URL; overrides CONTINUUM_NATS_URL."),
) -> None:
    common.set_global_options(config, nats_url)


@app.command()
def version(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Print the Continuum version."""
    emit({"version": __version__}, output, ["version"], [[__version__]])


@app.command()
def provision(output: OutputFormat = OUTPUT_OPTION) -> None:
    """Create or update every stream, durable consumer and bucket; safe to run again."""
    from continuum.shared.topology import provision as apply_topology

    async def _run() -> list[tuple[str, str, str]]:
        async with common.connection() as (_, js):
            report = await apply_topology(js, common.settings().jetstream)
            return report.actions

    actions = common.run(_run())
    rows = [[kind, name, action] for kind, name, action in actions]
    emit([{"kind": k, "name": n, "action": a} for k, n, a in actions], output, ["kind", "name", "action"], rows)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def service(ctx: typer.Context, name: str = typer.Argument(..., help=f"One of: {', '.join(SERVICE_NAMES)}.")) -> None:
    """Run one service in the foreground until Ctrl-C or SIGTERM."""
    if name not in SERVICE_NAMES:
        raise fail(f"unknown service {name!r}; choose one of: {', '.join(SERVICE_NAMES)}")
    # Imported by name at run time: the CLI must not import services statically.
    try:
        module = importlib.import_module(f"continuum.services.{name}.main")
    except ModuleNotFoundError as exc:
        raise fail(f"service {name!r} is not installed in this build ({exc})") from exc
    argv = list(ctx.args)
    if common._state["config"]:
        argv = ["--config", common._state["config"], *argv]
    if common._state["nats_url"]:
        argv = ["--nats-url", common._state["nats_url"], *argv]
    raise typer.Exit(module.main(argv))


def _register_command_modules() -> None:
    for module_name in COMMAND_MODULES:
        qualified = f"continuum.shared.cli.{module_name}"
        if importlib.util.find_spec(qualified) is None:
            continue
        importlib.import_module(qualified).register(app)


_register_command_modules()


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()

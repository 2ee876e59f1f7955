"""`continuum agent` (run the edge agent in the foreground) and `continuum fn` (artifacts and invocations)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from pathlib import Path

import typer

from continuum.shared import subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, emit, fail

ARTIFACT_BUCKET = "ctm-artifacts"

fn_app = typer.Typer(help="Upload function artifacts and invoke functions.", no_args_is_help=True)


def agent(
    node_id: str = typer.Option(None, "--node-id", help="Node id; default: stored in the state directory or generated."),
    zone: str = typer.Option(None, "--zone", help="Zone of this node."),
    site: str = typer.Option(None, "--site", help="Site of this node."),
    label: list[str] = typer.Option([], "--label", help="Node label key=value; repeatable."),
    taint: list[str] = typer.Option([], "--taint", help="Node taint key=value:Effect; repeatable."),
    reserve_cpu_millis: int = typer.Option(None, "--reserve-cpu-millis", help="CPU held back for the system, in millicores."),
    reserve_memory_mb: int = typer.Option(None, "--reserve-memory-mb", help="Memory held back for the system, in MiB."),
    reserve_gpus: int = typer.Option(None, "--reserve-gpus", help="GPUs held back for the system."),
    peer: list[str] = typer.Option([], "--peer", help="Node id of a peer agent to measure RTT to; repeatable."),
    state_dir: str = typer.Option(None, "--state-dir", help="Directory for the node id and the artifact cache."),
    telemetry_interval: float = typer.Option(None, "--telemetry-interval", help="Seconds between telemetry reports."),
) -> None:
    """Run the edge agent of this machine in the foreground until Ctrl-C or SIGTERM."""
    module_name = "continuum.services.agent.main"
    if importlib.util.find_spec(module_name) is None:
        raise fail("the agent service is not installed in this build")

    argv: list[str] = []
    for flag, value in (
        ("--node-id", node_id),
        ("--zone", zone),
        ("--site", site),
        ("--reserve-cpu-millis", reserve_cpu_millis),
        ("--reserve-memory-mb", reserve_memory_mb),
        ("--reserve-gpus", reserve_gpus),
        ("--state-dir", state_dir),
        ("--telemetry-interval", telemetry_interval),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for flag, values in (("--label", label), ("--taint", taint), ("--peer", peer)):
        for value in values:
            argv += [flag, value]
    if common._state["config"]:
        argv += ["--config", common._state["config"]]
    if common._state["nats_url"]:
        argv += ["--nats-url", common._state["nats_url"]]

    # Imported by name at run time: the CLI must not import services statically.
    module = importlib.import_module(module_name)
    raise typer.Exit(module.main(argv))


@fn_app.command("push")
def push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="A .py file, a .zip or a .wasm module."),
    name: str = typer.Option(..., "--name", help="Artifact name in the object store; workload specs refer to it."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Upload an artifact to the `ctm-artifacts` object store and print its digest."""
    try:
        subjects.validate_name(name, kind="artifact name")
    except ValueError as exc:
        raise fail(str(exc)) from exc
    data = file.read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    async def _run() -> None:
        from nats.js.api import ObjectMeta

        async with common.connection() as (_, js):
            store = await js.object_store(ARTIFACT_BUCKET)
            await store.put(name, data, meta=ObjectMeta(name=name, description=f"uploaded from {file.name}"))

    common.run(_run())
    emit({"name": name, "digest": digest, "bytes": len(data)}, output, ["name", "digest", "bytes"], [[name, digest, len(data)]])


@fn_app.command("invoke")
def invoke(
    name: str = typer.Argument(..., help="Function name."),
    payload: str = typer.Argument("null", help="JSON input for the function."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for the reply."),
) -> None:
    """Invoke a function on `ctm.fn.<name>` and print its reply as JSON."""
    try:
        json.loads(payload)
    except ValueError as exc:
        raise fail(f"invalid payload {payload[:60]!r}: not JSON ({exc})") from exc

    async def _run() -> bytes:
        import nats.errors

        async with common.connection() as (nc, _):
            try:
                response = await nc.request(subjects.function(name), payload.encode(), timeout=timeout)
            except nats.errors.NoRespondersError as exc:
                raise fail(f"no replica of {name!r} is running; deploy it first") from exc
            except nats.errors.TimeoutError as exc:
                raise fail(f"no reply from {name!r} within {timeout:g}s") from exc
            return response.data

    reply = json.loads(common.run(_run()))
    typer.echo(json.dumps(reply, indent=2))
    if not reply.get("ok", False):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("agent")(agent)
    app.add_typer(fn_app, name="fn")

"""Workload and node commands over the scheduler's `ctm.api.*` endpoints, and `invoke`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml

from continuum.shared import subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, emit, fail, print_json, print_table
from continuum.shared.errors import SchemaError
from continuum.shared.rpc import call
from continuum.shared.schemas import EmptyRequest, InvokeReply, NameRequest, OkReply, WorkloadSpec, convert, decode
from continuum.shared.schemas.scheduler_api import (
    DeployReply,
    DeployRequest,
    ExplainReply,
    ExplainRequest,
    NodeActionRequest,
    NodeList,
    NodeView,
    ScaleWorkloadRequest,
    WorkloadList,
    WorkloadView,
)


def _load_spec(path: Path) -> WorkloadSpec:
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise fail(f"spec file {str(path)!r} not found") from exc
    except yaml.YAMLError as exc:
        raise fail(f"spec file {str(path)!r} is not valid YAML or JSON: {exc}") from exc
    try:
        return convert(document, WorkloadSpec)
    except SchemaError as exc:
        raise fail(f"{path}: {exc}") from exc


async def _api(endpoint: str, request: Any, reply: type) -> Any:
    async with common.connection() as (nc, _):
        return await call(nc, subjects.api(endpoint), request, reply, timeout=10.0)


def register(app: typer.Typer) -> None:
    get_app = typer.Typer(help="List nodes or workloads.", no_args_is_help=True)
    describe_app = typer.Typer(help="Show one workload or node in detail.", no_args_is_help=True)
    app.add_typer(get_app, name="get")
    app.add_typer(describe_app, name="describe")

    @app.command()
    def deploy(file: Path = typer.Option(..., "-f", "--file", help="Workload spec, YAML or JSON."), output: OutputFormat = OUTPUT_OPTION) -> None:
        """Create or update a workload from a spec file."""
        spec = _load_spec(file)
        reply = common.run(_api("deploy", DeployRequest(spec=spec), DeployReply))
        action = "created" if reply.created else "updated"
        emit(reply, output, ["workload", "action", "desired"], [[reply.name, action, reply.desired_replicas]])

    @get_app.command("workloads")
    def get_workloads(output: OutputFormat = OUTPUT_OPTION) -> None:
        """List workloads with desired, bound and running replicas."""
        reply = common.run(_api("workloads", EmptyRequest(), WorkloadList))
        rows = [
            [w.name, w.runtime, w.desired_replicas, w.bound_replicas, w.running_replicas, w.failed_replicas, w.unschedulable or w.last_error]
            for w in reply.workloads
        ]
        emit(reply.workloads, output, ["name", "runtime", "desired", "bound", "running", "failed", "problem"], rows)

    @get_app.command("nodes")
    def get_nodes(output: OutputFormat = OUTPUT_OPTION) -> None:
        """List nodes with status, zone, free resources and replicas."""
        reply = common.run(_api("nodes", EmptyRequest(), NodeList))
        rows = [_node_row(node) for node in reply.nodes]
        emit(reply.nodes, output, ["node", "status", "zone", "site", "cpu free (m)", "memory free (MiB)", "gpus", "replicas"], rows)

    @describe_app.command("workload")
    def describe_workload(name: str, output: OutputFormat = OUTPUT_OPTION) -> None:
        """Show a workload's spec summary and every replica."""
        view = common.run(_api("get", NameRequest(name=name), WorkloadView))
        columns = ["replica", "node", "state", "epoch", "generation", "moving from", "reason"]
        rows = [[r.replica_id, r.node_id, r.state, r.epoch, r.generation, r.previous_node or "", r.reason] for r in view.replicas]
        if any(r.error or r.failures for r in view.replicas):
            columns += ["failures", "last error"]
            for row, replica in zip(rows, view.replicas):
                row += [replica.failures, replica.error]
        title = f"{view.name}: {view.spec.runtime} {view.spec.artifact}, desired {view.desired_replicas}"
        if view.unschedulable:
            title += f" (unschedulable: {view.unschedulable})"
        emit(view, output, columns, rows, title=title)

    @describe_app.command("node")
    def describe_node(name: str, output: OutputFormat = OUTPUT_OPTION) -> None:
        """Show a node's resources, labels, RTTs and replicas."""
        node = common.run(_api("node", NameRequest(name=name), NodeView))
        status = node.status
        if node.cordoned:
            status += " (cordoned)"
        if node.draining:
            status += " (draining)"
        rows = [
            ["status", status],
            ["zone / site", f"{node.zone} / {node.site}"],
            ["allocatable", f"{node.allocatable.cpu_millis}m CPU, {node.allocatable.memory_mb} MiB, {node.allocatable.gpus} GPU"],
            ["reserved", f"{node.reserved.cpu_millis}m CPU, {node.reserved.memory_mb} MiB, {node.reserved.gpus} GPU"],
            ["labels", ", ".join(f"{k}={v}" for k, v in node.labels.items())],
            ["taints", ", ".join(f"{t.key}={t.value}:{t.effect}" for t in node.taints)],
            ["rtt (ms)", ", ".join(f"{k} {v:.2f}" for k, v in node.rtt_ms.items())],
            ["replicas", ", ".join(node.replicas)],
            ["last report", f"{node.seconds_since_report}s ago" if node.seconds_since_report is not None else "never"],
        ]
        emit(node, output, ["field", "value"], rows, title=node.node_id)

    @app.command()
    def explain(
        name: str = typer.Argument(None, help="A deployed workload; leave out with --file."),
        file: Path = typer.Option(None, "-f", "--file", help="Explain a spec file that is not deployed yet."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Show which nodes a workload fits, why the others do not, and the best candidates' scores."""
        if (name is None) == (file is None):
            raise fail("give a workload NAME or --file SPEC, not both and not neither; for example `continuum explain hello`")
        request = ExplainRequest(spec=_load_spec(file)) if file is not None else ExplainRequest(name=name)
        reply = common.run(_api("explain", request, ExplainReply))
        if output == OutputFormat.json:
            print_json(reply)
            return
        print_table(
            f"{reply.workload}: {reply.message}",
            ["nodes", "count"],
            [["total", reply.total_nodes], ["fit", reply.feasible_nodes], *([f"not fit: {why}", count] for why, count in sorted(reply.reasons.items()))],
        )
        plugins = sorted({plugin for candidate in reply.candidates for plugin in candidate.scores})
        rows = [[c.node_id, f"{c.total:.1f}", *(f"{c.scores.get(p, 0.0):.0f}" for p in plugins)] for c in reply.candidates]
        if rows:
            print_table("best candidates (scores 0-100)", ["node", "total", *plugins], rows)

    @app.command()
    def scale(name: str, replicas: int = typer.Argument(..., help="Fixed replica count."), output: OutputFormat = OUTPUT_OPTION) -> None:
        """Set a workload's replica count."""
        reply = common.run(_api("scale", ScaleWorkloadRequest(name=name, replicas=replicas), OkReply))
        emit(reply, output, ["result"], [[reply.message]])

    @app.command()
    def delete(name: str, output: OutputFormat = OUTPUT_OPTION) -> None:
        """Delete a workload and stop its replicas."""
        reply = common.run(_api("delete", NameRequest(name=name), OkReply))
        emit(reply, output, ["result"], [[reply.message]])

    for action, text in (("cordon", "Stop placing new replicas on a node."), ("uncordon", "Allow placements on a node again."), ("drain", "Move a node's replicas elsewhere, new copies first.")):
        _node_action(app, action, text)

    @app.command()
    def invoke(name: str, payload: str = typer.Argument("{}", help="JSON input of the function."), timeout: float = typer.Option(30.0, help="Seconds to wait for the reply."), output: OutputFormat = OUTPUT_OPTION) -> None:
        """Invoke a function on `ctm.fn.NAME` and print its reply."""
        try:
            json.loads(payload)
        except json.JSONDecodeError as exc:
            raise fail(f"payload is not valid JSON: {exc}; quote it, for example '{{\"name\": \"Ada\"}}'") from exc

        async def _run() -> InvokeReply:
            async with common.connection() as (nc, _):
                try:
                    message = await nc.request(subjects.function(name), payload.encode(), timeout=timeout)
                except Exception as exc:  # noqa: BLE001 - no responders and timeouts become one readable error
                    raise fail(f"invoking {name!r} failed: {type(exc).__name__}: {exc}; is the workload deployed and running?") from exc
                return decode(message.data, InvokeReply)

        reply = common.run(_run())
        if output == OutputFormat.json:
            print_json(reply)
        else:
            emit(reply, output, ["ok", "result", "error", "replica", "node", "ms"], [[reply.ok, json.dumps(reply.result), reply.error.message if reply.error else "", reply.replica_id, reply.node_id, f"{reply.duration_ms:.1f}"]])
        if not reply.ok:
            raise typer.Exit(1)


def _node_action(app: typer.Typer, action: str, text: str) -> None:
    def command(node: str, reason: str = typer.Option("", help="Why, kept for `describe node`."), output: OutputFormat = OUTPUT_OPTION) -> None:
        reply = common.run(_api(action, NodeActionRequest(name=node, reason=reason), OkReply))
        emit(reply, output, ["result"], [[reply.message]])

    command.__doc__ = text
    app.command(name=action)(command)


def _node_row(node: NodeView) -> list[Any]:
    status = node.status
    if node.cordoned:
        status += ",cordoned"
    if node.draining:
        status += ",draining"
    return [
        node.node_id,
        status,
        node.zone,
        node.site,
        node.allocatable.cpu_millis - node.reserved.cpu_millis,
        node.allocatable.memory_mb - node.reserved.memory_mb,
        f"{node.allocatable.gpus - node.reserved.gpus}/{node.allocatable.gpus}",
        len(node.replicas),
    ]

"""`continuum guard`: check a text against a guardrail policy, and manage policies in the bucket.

    continuum guard "TEXT" [--policy NAME] [--stage input|retrieval|output]
    continuum guard policy set FILE [--name NAME]
    continuum guard policy list
    continuum guard policy delete NAME

A check exits with status 0 when the text is allowed or redacted and 2 when
it is blocked, so scripts can branch on it. `policy set` stores the file in
the `ctm-guard-policies` bucket and waits for a guardrails process to report
that it applied or rejected that revision.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path
from typing import Any

import click
import typer
import yaml
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError
from typer.core import TyperGroup

from continuum.shared import subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, console, emit, fail, print_json, print_table
from continuum.shared.rpc import ApiCallError, call
from continuum.shared.schemas.guard import (
    GuardCheckReply,
    GuardCheckRequest,
    GuardPoliciesReply,
    GuardPoliciesRequest,
    GuardPolicyInfo,
)

POLICY_BUCKET = "ctm-guard-policies"
BLOCKED_EXIT_CODE = 2
STAGES = ("input", "retrieval", "output")


class _CheckByDefault(TyperGroup):
    """Treat `continuum guard TEXT ...` as `continuum guard check TEXT ...` unless a subcommand is named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


def print_check(reply: GuardCheckReply) -> None:
    colour = {"allow": "green", "redact": "yellow", "block": "red"}[reply.verdict]
    console.print(f"[{colour}]{reply.verdict}[/{colour}]  policy {reply.policy}, stage {reply.stage}, {reply.took_ms:.2f} ms")
    if reply.findings:
        print_table(
            "findings",
            ["detector", "type", "span", "score", "action", "reason"],
            [[f.detector, f.type, f"{f.start}-{f.end}", f"{f.score:.2f}", f.action, f.reason] for f in reply.findings],
        )
    if reply.verdict == "redact" and reply.redacted_text is not None:
        console.print(reply.redacted_text, markup=False, highlight=False)


async def check_text(text: str, policy: str, stage: str, timeout: float) -> GuardCheckReply:
    async with common.connection() as (nc, _):
        request = GuardCheckRequest(text=text, stage=stage, policy=policy)  # type: ignore[arg-type]
        try:
            return await call(nc, subjects.guard("check"), request, GuardCheckReply, timeout=timeout)
        except ApiCallError as exc:
            if exc.error.code != "unavailable":
                raise
        # A just-started nats-server has answered a first request with "no responders" while the
        # service was subscribed, so try once more before reporting the service as unavailable.
        await asyncio.sleep(0.2)
        return await call(nc, subjects.guard("check"), request, GuardCheckReply, timeout=timeout)


def policy_name_of(text: str, path: Path) -> str:
    """Read the `name` field of a YAML, TOML or JSON policy file."""
    data: Any = None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise fail(f"policy file {str(path)!r} is neither a YAML mapping nor TOML: {exc}") from exc
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise fail(f"policy file {str(path)!r} has no `name`; add `name: <policy>` or pass --name")
    return name


async def set_policy(name: str, text: str, timeout: float) -> tuple[int, GuardPolicyInfo | None]:
    """Store the policy and wait up to `timeout` seconds for a guardrails process to apply or reject it."""
    async with common.connection() as (nc, js):
        try:
            kv = await js.key_value(POLICY_BUCKET)
        except (BucketNotFoundError, NotFoundError) as exc:
            raise fail(f"key-value bucket {POLICY_BUCKET} not found; run `continuum provision`") from exc
        revision = await kv.put(name, text.encode("utf-8"))

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply = await call(nc, subjects.guard("policies"), GuardPoliciesRequest(name=name), GuardPoliciesReply, timeout=2.0)
            except ApiCallError as exc:
                if exc.error.code not in ("unavailable", "not_found"):
                    raise
                # Keep polling: the service may still be applying the revision, or not running yet.
                reply = GuardPoliciesReply()
            for info in reply.policies:
                if info.revision >= revision or (info.rejected_revision or 0) >= revision:
                    return revision, info
            await asyncio.sleep(0.1)
        return revision, None


async def list_policies(timeout: float) -> GuardPoliciesReply:
    async with common.connection() as (nc, _):
        return await call(nc, subjects.guard("policies"), GuardPoliciesRequest(), GuardPoliciesReply, timeout=timeout)


async def delete_policy(name: str) -> None:
    async with common.connection() as (_, js):
        try:
            kv = await js.key_value(POLICY_BUCKET)
            await kv.get(name)
        except (BucketNotFoundError, NotFoundError, KeyNotFoundError) as exc:
            raise fail(f"policy {name!r} is not in the {POLICY_BUCKET} bucket; `continuum guard policy list` shows the policies in force") from exc
        await kv.delete(name)


def register(app: typer.Typer) -> None:
    guard_app = typer.Typer(cls=_CheckByDefault, help="Check texts with guardrail policies and manage the policies.", no_args_is_help=True)
    policy_app = typer.Typer(help="Store, list and delete guardrail policies.", no_args_is_help=True)
    guard_app.add_typer(policy_app, name="policy")
    app.add_typer(guard_app, name="guard")

    @guard_app.command("check")
    def check(
        text: str = typer.Argument(..., help="The text to check."),
        policy: str = typer.Option("default", "--policy", "-p", help="Policy name."),
        stage: str = typer.Option("input", "--stage", "-s", help="Where the text comes from: input, retrieval or output."),
        timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the guardrails service."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Check TEXT and print the verdict, the findings and the redacted text; exit 2 when blocked."""
        if stage not in STAGES:
            raise fail(f"invalid --stage {stage!r}; choose one of: {', '.join(STAGES)}")
        reply = common.run(check_text(text, policy, stage, timeout))
        if output == OutputFormat.json:
            print_json(reply)
        else:
            print_check(reply)
        if reply.verdict == "block":
            raise typer.Exit(BLOCKED_EXIT_CODE)

    @policy_app.command("set")
    def policy_set(
        file: Path = typer.Argument(..., help="Policy file: YAML, TOML or JSON."),
        name: str = typer.Option(None, "--name", help="Policy name; default: the file's `name` field."),
        timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for a guardrails process to apply it."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Store a policy in the bucket; every guardrails process applies it, or rejects it and keeps the old one."""
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read policy file {str(file)!r}: {exc}") from exc
        key = name or policy_name_of(text, file)
        revision, info = common.run(set_policy(key, text, timeout))

        result = {"name": key, "revision": revision, "status": "unconfirmed", "reason": None}
        if info is not None and (info.rejected_revision or 0) >= revision:
            result.update(status="rejected", reason=info.rejected_reason)
        elif info is not None:
            result.update(status="applied")
        emit(result, output, ["policy", "revision", "status"], [[key, revision, result["status"]]])
        if result["status"] == "rejected":
            raise fail(f"policy {key!r} revision {revision} rejected; the previous version stays in force: {result['reason']}")
        if result["status"] == "unconfirmed":
            console.print(f"stored revision {revision}, but no guardrails process confirmed it within {timeout:.0f}s")

    @policy_app.command("list")
    def policy_list(
        timeout: float = typer.Option(5.0, "--timeout", help="Seconds to wait for the guardrails service."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """List the policies in force, where each came from, and the last rejected update."""
        reply = common.run(list_policies(timeout))
        rows = [
            [
                info.name,
                info.revision or "-",
                info.source,
                ", ".join(f"{name} ({'/'.join(stages)})" for name, stages in info.detectors.items()),
                info.rejected_reason or "",
            ]
            for info in reply.policies
        ]
        emit(reply.policies, output, ["policy", "revision", "source", "detectors (stages)", "last rejection"], rows)

    @policy_app.command("delete")
    def policy_delete(name: str = typer.Argument(..., help="Policy name (the bucket key).")) -> None:
        """Delete a policy from the bucket; a policy that a file defines returns to its file version."""
        common.run(delete_policy(name))
        console.print(f"deleted policy {name!r} from {POLICY_BUCKET}")

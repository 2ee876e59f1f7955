"""`continuum webhooks`: manage outbound webhook subscriptions and inspect delivery attempts."""

from __future__ import annotations

import typer

from continuum.shared import rpc, subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, console, emit, fail
from continuum.shared.schemas import EmptyRequest, NameRequest, OkReply
from continuum.shared.schemas.hook import (
    DeliveriesReply,
    DeliveriesRequest,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
)

webhooks = typer.Typer(help="Outbound webhook subscriptions and their delivery attempts.", no_args_is_help=True)


def _parse_headers(values: list[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, separator, content = value.partition(":")
        if not separator or not name.strip():
            raise fail(f"invalid --header {value!r}: expected 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


@webhooks.command("add")
def add(
    url: str = typer.Argument(..., help="Target URL that receives the signed POSTs."),
    subject_filter: str = typer.Option(..., "--filter", "-f", help="Subject filter, e.g. ctm.placement.failed or ctm.hook.github.*"),
    subscription_id: str = typer.Option("", "--id", help="Subscription id (default: generated)."),
    secret: str = typer.Option("", "--secret", help="Standard Webhooks key 'whsec_<base64>' (default: generated and printed once)."),
    header: list[str] = typer.Option([], "--header", "-H", help="Extra request header 'Name: value'; repeat for more."),
    description: str = typer.Option("", "--description", help="Free text shown in the list."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Add a subscription; the signing secret is printed only here."""
    request = SubscriptionCreate(
        subject_filter=subject_filter,
        url=url,
        id=subscription_id,
        secret=secret,
        headers=_parse_headers(header),
        description=description,
    )

    async def _run() -> SubscriptionCreated:
        async with common.connection() as (nc, _):
            return await rpc.call(nc, subjects.api("webhooks_add"), request, SubscriptionCreated)

    created = common.run(_run())
    item = created.subscription
    emit(created, output, ["id", "filter", "url"], [[item.id, item.subject_filter, item.url]])
    if output == OutputFormat.table:
        # On its own line, unwrapped, so a narrow terminal cannot cut it off.
        console.print("Signing secret (store it now: it is not shown again):")
        console.print(created.secret, soft_wrap=True, highlight=False)


@webhooks.command("list")
def list_subscriptions(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List subscriptions (secrets are never shown)."""

    async def _run() -> SubscriptionList:
        async with common.connection() as (nc, _):
            return await rpc.call(nc, subjects.api("webhooks_list"), EmptyRequest(), SubscriptionList)

    reply = common.run(_run())
    rows = [
        [item.id, item.subject_filter, item.url, ", ".join(item.header_names), item.created_at.isoformat(timespec="seconds")]
        for item in reply.subscriptions
    ]
    emit(reply.subscriptions, output, ["id", "filter", "url", "headers", "created"], rows)


@webhooks.command("remove")
def remove(subscription_id: str = typer.Argument(..., help="Subscription id."), output: OutputFormat = OUTPUT_OPTION) -> None:
    """Remove a subscription; its pending deliveries are dropped."""

    async def _run() -> OkReply:
        async with common.connection() as (nc, _):
            return await rpc.call(nc, subjects.api("webhooks_remove"), NameRequest(name=subscription_id), OkReply)

    reply = common.run(_run())
    emit(reply, output, ["result"], [[reply.message]])


@webhooks.command("deliveries")
def deliveries(
    subscription_id: str = typer.Option(None, "--subscription", "-s", help="Only attempts of this subscription."),
    delivery_id: str = typer.Option(None, "--delivery", "-d", help="Only attempts of this delivery (webhook-id)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Newest attempts to show, 1-1000."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Show recent delivery attempts with status, latency and error."""
    request = DeliveriesRequest(subscription_id=subscription_id, delivery_id=delivery_id, limit=limit)

    async def _run() -> DeliveriesReply:
        async with common.connection() as (nc, _):
            return await rpc.call(nc, subjects.api("webhooks_deliveries"), request, DeliveriesReply, timeout=15.0)

    reply = common.run(_run())
    rows = [
        [
            item.at.isoformat(timespec="seconds"),
            item.subscription_id,
            item.delivery_id,
            item.attempt,
            item.outcome,
            item.status_code or "-",
            f"{item.latency_ms:.1f}",
            item.error,
        ]
        for item in reply.attempts
    ]
    emit(reply.attempts, output, ["time", "subscription", "delivery", "attempt", "outcome", "status", "ms", "error"], rows)


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks, name="webhooks")

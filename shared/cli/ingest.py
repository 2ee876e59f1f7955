"""`continuum ingest`: submit an ingest job and follow its status events to the end."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from continuum.shared import bus, subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, console, fail, print_json, print_table
from continuum.shared.envelope import from_nats
from continuum.shared.errors import SchemaError, SubjectError
from continuum.shared.schemas.ingest import ChunkingOptions, IngestRequest, IngestStatus

_REMOTE_PREFIXES = ("s3://", "objstore://", "pydoc:", "inline:", "file://")


def build_request(
    source: str | None,
    *,
    collection: str,
    text: str | None,
    glob: str | None,
    fields: list[str],
    metadata: list[str],
    max_tokens: int,
    overlap_tokens: int,
) -> IngestRequest:
    """Build the request; a local path becomes absolute, so the service resolves it the same way."""
    if not source and text is None:
        raise typer.BadParameter("missing SOURCE: give a path, s3://bucket/prefix, objstore://bucket/prefix or pydoc:topics, or use --text")
    try:
        subjects.validate_name(collection, kind="collection name")
    except SubjectError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if source and "://" in source and not source.startswith(_REMOTE_PREFIXES):
        scheme = source.split("://", 1)[0]
        raise typer.BadParameter(
            f"invalid SOURCE {source!r}: unknown scheme {scheme!r}; use a local path, file://, s3://, objstore:// or pydoc:"
        )
    if source and not source.startswith(_REMOTE_PREFIXES):
        source = str(Path(source).expanduser().absolute())
    pairs: dict[str, str] = {}
    for item in metadata:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise typer.BadParameter(f"invalid --meta {item!r}: expected KEY=VALUE")
        pairs[key] = value
    return IngestRequest(
        collection=collection,
        source=source or "",
        text=text,
        job_id=uuid.uuid4().hex[:16],
        glob=glob,
        fields=fields,
        metadata=pairs,
        chunking=ChunkingOptions(max_tokens=max_tokens, overlap_tokens=overlap_tokens),
    )


async def submit_and_follow(request: IngestRequest, *, timeout: float, show_progress: bool) -> IngestStatus | None:
    """Publish the request and return the final status, or None when `timeout` passes first."""
    assert request.job_id is not None
    async with common.connection() as (nc, js):
        updates: asyncio.Queue[IngestStatus] = asyncio.Queue()

        async def handle_status(msg) -> None:  # noqa: ANN001 - nats-py callback
            try:
                updates.put_nowait(from_nats(msg.data, msg.headers, IngestStatus, subject=msg.subject).data)
            except SchemaError:
                console.print(f"[yellow]ignored an undecodable status event on {msg.subject}[/yellow]")

        subscription = await nc.subscribe(subjects.ingest_status(request.job_id), cb=handle_status)
        await bus.publish(js, subjects.INGEST, request, source="continuum/cli", event_id=f"ingest-{request.job_id}")
        try:
            return await asyncio.wait_for(_follow(updates, show_progress), timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            await subscription.unsubscribe()


async def _follow(updates: asyncio.Queue[IngestStatus], show_progress: bool) -> IngestStatus:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[chunks]} chunks, {task.fields[errors]} errors"), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=False) as progress:
        task = progress.add_task("waiting for data prep", total=None, chunks=0, errors=0)
        while True:
            status = await updates.get()
            done = status.documents_done + status.documents_skipped + len(status.errors)
            progress.update(
                task,
                description=f"ingest {status.job_id} [{status.state}]",
                total=status.documents_total or None,
                completed=done,
                chunks=status.chunks,
                errors=len(status.errors),
            )
            if status.state in ("completed", "failed"):
                return status


def _print_summary(status: IngestStatus) -> None:
    rows = [
        ["job", status.job_id],
        ["collection", status.collection],
        ["state", status.state],
        ["documents", f"{status.documents_done} of {status.documents_total}"],
        ["skipped (duplicate text)", status.documents_skipped],
        ["chunks", status.chunks],
        ["errors", len(status.errors)],
    ]
    if status.message:
        rows.append(["message", status.message])
    print_table("Ingest summary", ["", ""], rows)
    if status.errors:
        print_table("Documents that failed", ["document", "reason"], [[e.document, e.reason] for e in status.errors])


def register(app: typer.Typer) -> None:
    @app.command()
    def ingest(
        source: str = typer.Argument(None, help="Path, directory or glob; s3://bucket/prefix; objstore://bucket/prefix; pydoc:topics."),
        collection: str = typer.Option(..., "--collection", "-c", help="Collection the chunks go to."),
        text: str = typer.Option(None, "--text", help="Ingest this text instead of a SOURCE."),
        glob: str = typer.Option(None, "--glob", help="Only files or keys matching this pattern (for example '**/*.md')."),
        field: list[str] = typer.Option([], "--field", help="JSON / JSON Lines field that holds text (repeatable)."),
        meta: list[str] = typer.Option([], "--meta", help="KEY=VALUE metadata stored on every chunk (repeatable)."),
        max_tokens: int = typer.Option(256, "--max-tokens", help="Maximum chunk size in model tokens."),
        overlap_tokens: int = typer.Option(32, "--overlap-tokens", help="Tokens shared by consecutive chunks."),
        timeout: float = typer.Option(600.0, "--timeout", help="Seconds to wait for the job to finish."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Ingest documents into a collection and show progress until the job completes."""
        request = build_request(
            source, collection=collection, text=text, glob=glob, fields=field, metadata=meta,
            max_tokens=max_tokens, overlap_tokens=overlap_tokens,
        )
        status = common.run(submit_and_follow(request, timeout=timeout, show_progress=output == OutputFormat.table))
        if status is None:
            raise fail(f"ingest job {request.job_id} sent no final status within {timeout:.0f}s; is the dataprep service running?")
        if output == OutputFormat.json:
            print_json(status)
        else:
            _print_summary(status)
        if status.state == "failed":
            raise fail(f"ingest job {status.job_id} failed: {status.message}")
        if status.errors and not status.documents_done and not status.documents_skipped:
            raise fail(f"ingest job {status.job_id} ingested no document: {status.errors[0].reason}")

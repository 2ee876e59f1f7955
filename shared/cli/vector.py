"""`continuum query`, `continuum collections` and `continuum collection ...`: the vector DB over `ctm.vector.*`."""

from __future__ import annotations

import json
import re
from typing import Any

import typer

from continuum.shared import rpc, subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, emit, fail
from continuum.shared.schemas import (
    CollectionRequest,
    CollectionsReply,
    CollectionStats,
    DeleteDocumentReply,
    DeleteDocumentRequest,
    EmptyRequest,
    Filter,
    MaintainReply,
    OkReply,
    QueryReply,
    QueryRequest,
)

# Longest operators first, so `>=` is not read as `>` followed by `=`.
_FILTER_PATTERN = re.compile(r"^\s*(?P<field>[A-Za-z0-9_.\-]+)\s*(?P<op>>=|<=|!=|=|>|<|~)\s*(?P<value>.*)$", re.S)
_OPERATORS = {"=": "eq", "!=": "ne", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "~": "contains"}

collection_app = typer.Typer(help="Inspect and manage one vector DB collection.", no_args_is_help=True)


def parse_filter(text: str) -> Filter:
    """Parse `FIELD OP VALUE` (OP one of = != > >= < <= ~) into a Filter; a JSON list after `=` means `in`."""
    match = _FILTER_PATTERN.match(text)
    if not match:
        raise typer.BadParameter(f"invalid --filter {text!r}: expected FIELD OP VALUE, for example metadata.lang=en or chunk_index<3")
    raw = match.group("value").strip()
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    op = _OPERATORS[match.group("op")]
    if op == "eq" and isinstance(value, list):
        op = "in"
    if op == "contains" and not isinstance(value, str):
        value = raw
    return Filter(field=match.group("field"), op=op, value=value)


async def _call(endpoint: str, message: Any, reply: type[Any], timeout: float) -> Any:
    async with common.connection() as (nc, _):
        return await rpc.call(nc, subjects.vector(endpoint), message, reply, timeout=timeout)


def query(
    text: str = typer.Argument(..., help="Query text; embedded with the collection's model in vector and hybrid mode."),
    collection: str = typer.Option(..., "--collection", "-c", help="Collection to search."),
    k: int = typer.Option(10, "-k", help="Number of hits to return."),
    mode: str = typer.Option("vector", "--mode", "-m", help="vector, fts (full-text) or hybrid (reciprocal rank fusion)."),
    filters: list[str] = typer.Option([], "--filter", "-f", help="FIELD OP VALUE, for example metadata.lang=en; repeat to AND."),
    timeout: float = typer.Option(15.0, help="Seconds to wait for the reply."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Search a collection by text and print the best hits."""
    if mode not in ("vector", "fts", "hybrid"):
        raise fail(f"invalid --mode {mode!r}; use vector, fts or hybrid")
    request = QueryRequest(collection=collection, text=text, k=k, mode=mode, filters=[parse_filter(item) for item in filters])  # type: ignore[arg-type]
    reply: QueryReply = common.run(_call("query", request, QueryReply, timeout))
    rows = [
        [rank, f"{hit.score:.4f}", hit.document_id, hit.title, _shorten(hit.text)]
        for rank, hit in enumerate(reply.hits, start=1)
    ]
    emit(reply, output, ["#", "score", "document", "title", "text"], rows, title=f"{len(reply.hits)} hits in {reply.took_ms:.1f} ms")


def collections(output: OutputFormat = OUTPUT_OPTION) -> None:
    """List collections with their row counts, model and indexes."""
    reply: CollectionsReply = common.run(_call("collections", EmptyRequest(), CollectionsReply, 15.0))
    rows = [
        [info.name, info.rows, info.model, info.dimension, _yes(info.indexed), _yes(info.fts_indexed), info.version]
        for info in reply.collections
    ]
    emit(reply.collections, output, ["name", "rows", "model", "dimension", "ANN index", "FTS index", "version"], rows)


@collection_app.command("stats")
def stats(name: str = typer.Argument(..., help="Collection name."), output: OutputFormat = OUTPUT_OPTION) -> None:
    """Show rows, documents, fragments and indexes of a collection."""
    reply: CollectionStats = common.run(_call("stats", CollectionRequest(collection=name), CollectionStats, 30.0))
    rows = [
        ["rows", reply.info.rows],
        ["documents", reply.documents],
        ["model", f"{reply.info.model} ({reply.info.dimension} dimensions)"],
        ["fragments", f"{reply.fragments} ({reply.small_fragments} small)"],
        ["bytes", reply.total_bytes],
        ["version", reply.info.version],
        *[[f"index {index.name}", f"{index.index_type}: {index.indexed_rows} indexed, {index.unindexed_rows} unindexed"] for index in reply.indexes],
    ]
    emit(reply, output, ["field", "value"], rows, title=name)


@collection_app.command("delete-document")
def delete_document(
    name: str = typer.Argument(..., help="Collection name."),
    document_id: str = typer.Argument(..., help="Document id whose chunks to delete."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Delete every chunk of one document."""
    request = DeleteDocumentRequest(collection=name, document_id=document_id)
    reply: DeleteDocumentReply = common.run(_call("delete_document", request, DeleteDocumentReply, 30.0))
    emit(reply, output, ["collection", "document", "deleted rows"], [[reply.collection, reply.document_id, reply.deleted]])


@collection_app.command("drop")
def drop(
    name: str = typer.Argument(..., help="Collection name."),
    yes: bool = typer.Option(False, "--yes", help="Drop without asking."),
    output: OutputFormat = OUTPUT_OPTION,
) -> None:
    """Drop a collection and all its rows."""
    if not yes and not typer.confirm(f"Drop collection {name!r} and all its rows?"):
        raise typer.Exit(1)
    reply: OkReply = common.run(_call("drop", CollectionRequest(collection=name), OkReply, 30.0))
    emit(reply, output, ["result"], [[reply.message]])


@collection_app.command("maintain")
def maintain(name: str = typer.Argument(..., help="Collection name."), output: OutputFormat = OUTPUT_OPTION) -> None:
    """Build due indexes and compact a collection now instead of waiting for the background pass."""
    reply: MaintainReply = common.run(_call("maintain", CollectionRequest(collection=name), MaintainReply, 600.0))
    emit(reply, output, ["collection", "actions"], [[reply.collection, ", ".join(reply.actions) or "none due"]])


def _shorten(text: str, limit: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command("collections")(collections)
    app.add_typer(collection_app, name="collection")

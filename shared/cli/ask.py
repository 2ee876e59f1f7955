"""`continuum ask`: retrieval-augmented answers with citations from the workflow service."""

from __future__ import annotations

import typer
from rich.panel import Panel
from rich.text import Text

from continuum.shared import subjects
from continuum.shared.cli import common
from continuum.shared.cli.output import OUTPUT_OPTION, OutputFormat, console, print_json, print_table
from continuum.shared.rpc import call
from continuum.shared.schemas import AskReply, AskRequest


def print_answer(reply: AskReply) -> None:
    """Print an answer, its citations and guardrail findings for people."""
    style = "red" if reply.blocked else "green"
    title = f"blocked at {reply.blocked_stage}" if reply.blocked else f"answer ({reply.composer})"
    console.print(Panel(Text(reply.answer), title=title, border_style=style, expand=False))
    if reply.citations:
        print_table(
            "citations",
            ["#", "source", "heading", "chunk id", "score"],
            [
                [c.number, c.source_uri, " > ".join(c.heading_path), c.chunk_id[:16], f"{c.score:.3f}"]
                for c in reply.citations
            ],
        )
    if reply.findings:
        print_table(
            "guardrail findings",
            ["detector", "type", "span", "action", "reason"],
            [[f.detector, f.type, f"{f.start}-{f.end}", f.action, f.reason] for f in reply.findings],
        )
    console.print(f"trace id {reply.trace_id or '-'}  ·  {reply.took_ms:.0f} ms")


async def ask_question(question: str, collection: str, k: int, policy: str, timeout: float) -> AskReply:
    async with common.connection() as (nc, _):
        request = AskRequest(question=question, collection=collection, k=k, policy=policy)
        return await call(nc, subjects.rag("ask"), request, AskReply, timeout=timeout)


def register(app: typer.Typer) -> None:
    @app.command()
    def ask(
        question: str = typer.Argument(..., help="The question to answer."),
        collection: str = typer.Option(..., "--collection", "-c", help="Collection to retrieve passages from."),
        k: int = typer.Option(5, "-k", help="Passages to retrieve."),
        policy: str = typer.Option("default", "--policy", help="Guardrail policy name."),
        timeout: float = typer.Option(60.0, "--timeout", help="Seconds to wait for the answer."),
        output: OutputFormat = OUTPUT_OPTION,
    ) -> None:
        """Answer a question from a collection, with citations and guardrail checks; exit 2 when a guardrail blocks it."""
        reply = common.run(ask_question(question, collection, k, policy, timeout))
        if output == OutputFormat.json:
            print_json(reply)
        else:
            print_answer(reply)
        if reply.blocked:
            raise typer.Exit(2)

"""Printing results as readable tables or, with `--output json`, as JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from continuum.shared.schemas import to_builtins

console = Console()
error_console = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


OUTPUT_OPTION = typer.Option(OutputFormat.table, "--output", "-o", help="Output format: table or json.")


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_builtins(value), indent=2, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        # Cells hold user data (document text, error messages): escape it so that text
        # such as `[dataprep]` is shown, not taken for Rich markup and dropped.
        table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
    console.print(table)


def emit(value: Any, output: OutputFormat, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None) -> None:
    """Print `value` as JSON, or `rows` as a table, as `output` asks."""
    if output == OutputFormat.json:
        print_json(value)
    else:
        print_table(title, columns, rows)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the Exit to raise."""
    error_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)

"""`continuum docs generate`: rebuild docs/asyncapi.yaml, docs/subjects.md and the config reference."""

from __future__ import annotations

from pathlib import Path

import typer

from continuum.shared.asyncapi import render_asyncapi, render_subjects_page
from continuum.shared.configref import splice_reference
from continuum.shared.cli.output import console, fail


def register(app: typer.Typer) -> None:
    docs_app = typer.Typer(help="Generated documentation.", no_args_is_help=True)

    @docs_app.command("generate")
    def generate(
        docs_dir: Path = typer.Option(Path("docs"), "--docs-dir", help="Folder that holds asyncapi.yaml and subjects.md."),
        check: bool = typer.Option(False, "--check", help="Exit 1 if a file is stale instead of writing it."),
    ) -> None:
        """Write the AsyncAPI document, the subject catalog and the configuration reference."""
        stale = []
        operations = docs_dir / "operations.md"
        generated = [("asyncapi.yaml", render_asyncapi()), ("subjects.md", render_subjects_page())]
        if operations.exists():
            generated.append(("operations.md", splice_reference(operations.read_text())))
        for name, text in generated:
            path = docs_dir / name
            current = path.read_text() if path.exists() else None
            if current == text:
                continue
            stale.append(name)
            if not check:
                path.write_text(text)
                console.print(f"wrote {path}")
        if check and stale:
            raise fail(f"stale generated docs: {', '.join(stale)}; run `continuum docs generate`")

    app.add_typer(docs_app, name="docs")

"""`continuum ingest` as a user runs it: a subprocess against a data prep service on the test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from continuum.services.dataprep.settings import DataprepSettings
from continuum.shared.config import Settings
from continuum.shared.testing import run_cli

pytestmark = pytest.mark.timeout(120)


async def continuum(settings: Settings, *args: str) -> tuple[int, str, str]:
    return await run_cli(settings.nats.url, *args, timeout=90)


@pytest.fixture
def docs(roots: Path) -> Path:
    folder = roots / "manual"
    folder.mkdir()
    (folder / "install.md").write_text("# Install\n\nRun `pip install continuum`.\n\n## Check\n\nRun `continuum up`.\n")
    (folder / "usage.txt").write_text("Publish an event to a subject.\n\nEvery service reads its own stream.\n")
    return folder


async def test_ingest_directory_prints_summary(settings, start_service, roots, docs, unique) -> None:  # noqa: ANN001
    await start_service(DataprepSettings(roots=[str(roots)]))

    code, stdout, stderr = await continuum(settings, "ingest", str(docs), "--collection", f"cli{unique}")

    assert code == 0, stderr
    assert "Ingest summary" in stdout
    assert "completed" in stdout
    assert "2 of 2" in stdout


async def test_ingest_json_output_returns_final_status(settings, start_service, roots, docs, unique) -> None:  # noqa: ANN001
    await start_service(DataprepSettings(roots=[str(roots)]))

    code, stdout, stderr = await continuum(
        settings, "ingest", str(docs), "--collection", f"cli{unique}", "--output", "json"
    )
    status = json.loads(stdout)

    assert code == 0, stderr
    assert status["state"] == "completed"
    assert status["collection"] == f"cli{unique}"
    assert status["documents_total"] == 2
    assert status["documents_done"] == 2
    assert status["chunks"] >= 2
    assert status["errors"] == []


async def test_ingest_missing_path_exits_nonzero(settings, start_service, roots, unique) -> None:  # noqa: ANN001
    await start_service(DataprepSettings(roots=[str(roots)]))
    missing = roots / "nothing-here"

    code, stdout, stderr = await continuum(settings, "ingest", str(missing), "--collection", f"cli{unique}")

    assert code == 1
    assert "ingested no document" in stderr
    assert "no such file or directory" in stderr
    assert "Documents that failed" in stdout


async def test_ingest_path_outside_roots_exits_nonzero(settings, start_service, roots, tmp_path, unique) -> None:  # noqa: ANN001
    await start_service(DataprepSettings(roots=[str(roots)]))
    outside = tmp_path / "secret.txt"
    outside.write_text("not for ingest")

    code, _, stderr = await continuum(settings, "ingest", str(outside), "--collection", f"cli{unique}")

    assert code == 1
    assert "ingested no document" in stderr
    assert "outside" in stderr


async def test_ingest_invalid_source_reports_failed_job(settings, start_service, roots, unique) -> None:  # noqa: ANN001
    await start_service(DataprepSettings(roots=[str(roots)]))

    code, _, stderr = await continuum(settings, "ingest", "pydoc:modules", "--collection", f"cli{unique}")

    assert code == 1
    assert "failed" in stderr
    assert "invalid source 'pydoc:modules'" in stderr


async def test_ingest_unknown_scheme_rejected_before_submit(settings, unique) -> None:  # noqa: ANN001
    code, _, stderr = await continuum(settings, "ingest", "ftp://example.invalid/docs", "--collection", f"cli{unique}")
    # click draws usage errors in a box and wraps them at the terminal width.
    message = " ".join(stderr.replace("│", " ").split())

    assert code == 2
    assert "unknown scheme 'ftp'" in message

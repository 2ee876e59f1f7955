"""Helpers for testing Continuum as users run it: the `continuum` command in a subprocess."""

from __future__ import annotations

import asyncio
import os
import sys


async def run_cli(nats_url: str, *args: str, columns: int = 250, timeout: float = 90.0) -> tuple[int, str, str]:
    """Run `continuum --nats-url URL ARGS...` and return (exit code, stdout, stderr).

    `columns` sets the terminal width Rich lays tables out for, so wide tables
    are not wrapped in assertions on their text.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "continuum.shared.cli.main",
        "--nats-url",
        nats_url,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": str(columns)},
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, stdout.decode(), stderr.decode()

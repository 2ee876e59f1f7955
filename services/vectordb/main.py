"""Entry point: `python -m continuum.services.vectordb` or `continuum service vectordb`."""

from __future__ import annotations

from continuum.services.vectordb.service import VectorDbService
from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    return run_service("vectordb", VectorDbService, argv)

"""Entry point: `python -m continuum.services.dataprep` or `continuum service dataprep`."""

from __future__ import annotations

from continuum.shared.runtime import run_service


def _create_service():  # noqa: ANN202 - the import stays inside so `--help` needs no model libraries
    from continuum.services.dataprep.service import DataprepService

    return DataprepService()


def main(argv: list[str] | None = None) -> int:
    return run_service("dataprep", _create_service, argv)

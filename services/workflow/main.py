"""Entry point: `python -m continuum.services.workflow` or `continuum service workflow`."""

from __future__ import annotations

from continuum.services.workflow.service import WorkflowService
from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    return run_service("workflow", WorkflowService, argv)

"""Entry point: `continuum service scheduler` and `python -m continuum.services.scheduler`."""

from __future__ import annotations

from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    from continuum.services.scheduler.service import SchedulerService

    return run_service("scheduler", SchedulerService, argv)

"""Exceptions of the scheduler.

    SchedulerError
    ├── InvalidSpecError      a workload spec with one or more problems (all listed)
    ├── NotFoundError         an unknown workload or node name
    └── LeadershipLostError   the lease or a bindings revision was taken by another scheduler
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError


class SchedulerError(ContinuumError):
    """Root of the scheduler's exceptions."""


class InvalidSpecError(SchedulerError):
    """A workload spec that failed validation; `problems` lists each as `field: message`."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__(f"invalid workload spec {name!r}: {len(problems)} problem(s): " + "; ".join(problems))
        self.name = name
        self.problems = problems


class NotFoundError(SchedulerError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name


class LeadershipLostError(SchedulerError):
    """Raised when a compare-and-set write shows that another scheduler now leads."""

"""Workflow errors.

    WorkflowError
    └── StepFailed     a pipeline step failed after its retries; names the step
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError


class WorkflowError(ContinuumError):
    """Root of the workflow service's exceptions."""


class StepFailed(WorkflowError):
    """A step failed; `step` names it and `code` is the API error code to return."""

    def __init__(self, step: str, message: str, *, code: str = "unavailable", attempts: int = 1) -> None:
        super().__init__(f"step {step!r} failed after {attempts} attempt(s): {message}")
        self.step = step
        self.code = code
        self.attempts = attempts

"""Exceptions of the guardrails service.

    GuardrailsError
    ├── PolicyError        a policy document is invalid; the previous policy stays in force
    └── DetectorError      a detector raised while scanning; the verdict is `block`
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError


class GuardrailsError(ContinuumError):
    """Root of the exceptions raised by the guardrails service."""


class PolicyError(GuardrailsError):
    """An invalid policy document; `policy` is its name and `source` its file or bucket key."""

    def __init__(self, message: str, *, policy: str, source: str) -> None:
        super().__init__(message)
        self.policy = policy
        self.source = source


class DetectorError(GuardrailsError):
    """A detector failed on a text; `detector` names it."""

    def __init__(self, message: str, *, detector: str) -> None:
        super().__init__(message)
        self.detector = detector

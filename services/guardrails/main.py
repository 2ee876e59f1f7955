"""Entry point: `python -m continuum.services.guardrails` and `continuum service guardrails`."""

from __future__ import annotations

from continuum.services.guardrails.service import GuardrailsService
from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    return run_service("guardrails", GuardrailsService, argv)

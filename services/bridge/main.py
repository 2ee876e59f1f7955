"""Entry point: `continuum service bridge` and `python -m continuum.services.bridge`."""

from __future__ import annotations

from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    from continuum.services.bridge.service import BridgeService

    return run_service("bridge", BridgeService, argv)

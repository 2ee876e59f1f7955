"""Entry point: `continuum service bridge` and `python -m continuum.services.bridge`."""

from __future__ import annotations

import logging

from continuum.shared.runtime import run_service


def main(argv: list[str] | None = None) -> int:
    from continuum.services.bridge.errors import SettingsError
    from continuum.services.bridge.eventloop import install_from_config
    from continuum.services.bridge.service import BridgeService

    try:
        install_from_config(argv)
    except SettingsError as exc:
        logging.getLogger("bridge").error("%s", exc)
        return 1
    return run_service("bridge", BridgeService, argv)

"""The bridge's event loop: uvloop when it is installed, unless `[bridge] event_loop` selects asyncio.

uvloop runs the loop and its sockets in C. In four paired runs under the
benchmark's wrk load on a 2-core machine it cut the bridge's CPU time per
accepted webhook by about 9% and raised the accepted rate by about 15%
(estimates from a noisy shared machine), with the same behaviour, so `auto`
uses it where it is installed and falls back to asyncio elsewhere. The
choice is made before `run_service` starts the loop, so this module reads
the setting itself.
"""

from __future__ import annotations

import asyncio
import importlib.util

from continuum.services.bridge.errors import SettingsError
from continuum.services.bridge.settings import BridgeSettings
from continuum.shared.config import load_section
from continuum.shared.errors import ContinuumError
from continuum.shared.runtime import service_argument_parser


def choose_event_loop(event_loop: str) -> str:
    """Install the event loop policy for `event_loop` (auto, uvloop or asyncio) and return the loop used."""
    if event_loop == "asyncio":
        return "asyncio"
    if importlib.util.find_spec("uvloop") is None:
        if event_loop == "uvloop":
            raise SettingsError(
                "[bridge] event_loop is 'uvloop' but uvloop is not installed; install it or set event_loop = 'auto'",
                key="bridge.event_loop",
            )
        return "asyncio"

    import uvloop

    # NOTE: event loop policies are deprecated from Python 3.14; switch to asyncio.run(loop_factory=...) there.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def install_from_config(argv: list[str] | None) -> str:
    """Read `event_loop` from the config the service will use and install that loop.

    An unreadable config selects asyncio here, so that `run_service`
    reports the config error itself with its usual message.
    """
    args, _ = service_argument_parser("bridge").parse_known_args(argv)
    try:
        event_loop = load_section("bridge", BridgeSettings, args.config).event_loop
    except ContinuumError:
        return "asyncio"
    return choose_event_loop(event_loop)

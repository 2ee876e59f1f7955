"""Helpers shared by CLI commands: settings, a NATS connection, running a coroutine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import typer

from continuum.shared import bus
from continuum.shared.cli.output import fail
from continuum.shared.config import Settings, load_settings
from continuum.shared.errors import ContinuumError
from continuum.shared.rpc import ApiCallError

T = TypeVar("T")

# Set by the root callback from --config and --nats-url.
_state: dict[str, Any] = {"config": None, "nats_url": None}


def set_global_options(config: str | None, nats_url: str | None) -> None:
    _state["config"] = config
    _state["nats_url"] = nats_url


def settings() -> Settings:
    loaded = load_settings(_state["config"])
    if _state["nats_url"]:
        loaded.nats.url = _state["nats_url"]
    return loaded


@contextlib.asynccontextmanager
async def connection() -> AsyncIterator[tuple[bus.NATS, bus.JetStreamContext]]:
    """Connect with the CLI's settings and close on exit."""
    current = settings()
    nc = await bus.connect(current, name="continuum-cli")
    try:
        yield nc, bus.jetstream(nc, current)
    finally:
        await nc.close()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; turn Continuum errors into a readable message and exit code 1."""
    try:
        return asyncio.run(coroutine)
    except ApiCallError as exc:
        details = "".join(f"\n  - {line}" for line in exc.error.details)
        field = f" (field {exc.error.field})" if exc.error.field else ""
        raise fail(f"{exc.error.code}: {exc.error.message}{field}{details}") from exc
    except ContinuumError as exc:
        raise fail(str(exc)) from exc
    except KeyboardInterrupt:
        raise typer.Exit(130) from None

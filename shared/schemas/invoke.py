"""Function invocation replies on `ctm.fn.<name>`.

The request body is the function's input as JSON, exactly as a caller sends
it (`nats req ctm.fn.hello '{"name": "Ada"}'`), so it has no schema here.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from continuum.shared.schemas._base import Event

InvokeErrorCode = Literal["user_error", "timeout", "overloaded", "bad_request", "not_found", "unavailable", "internal"]


class InvokeError(msgspec.Struct, kw_only=True):
    """Why an invocation failed; `message` is safe to show to the caller."""

    code: InvokeErrorCode
    message: str
    error_type: str = ""


class InvokeReply(Event, kw_only=True):
    """Reply to one invocation: `result` on success, `error` otherwise."""

    CE_TYPE = "continuum.fn.reply.v1"

    ok: bool
    result: Any = None
    error: InvokeError | None = None
    replica_id: str = ""
    node_id: str = ""
    duration_ms: float = 0.0
    cold_start_ms: float | None = None

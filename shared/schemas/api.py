"""Request and reply shapes shared by the request/reply services (`ctm.api.*` and others)."""

from __future__ import annotations

from typing import Literal

import msgspec

from continuum.shared.schemas._base import Event

ErrorCode = Literal[
    "bad_request",
    "invalid_spec",
    "not_found",
    "conflict",
    "unavailable",
    "timeout",
    "blocked",
    "internal",
]


class ApiError(msgspec.Struct, kw_only=True):
    """A structured error: `field` names the offending field or object, when there is one."""

    code: ErrorCode
    message: str
    field: str | None = None
    details: list[str] = msgspec.field(default_factory=list)


class ErrorReply(Event, kw_only=True):
    """Every request/reply endpoint answers a failure with this shape."""

    CE_TYPE = "continuum.api.error.v1"

    error: ApiError


class NameRequest(Event, kw_only=True):
    """A request that names one object (a workload, a node, a collection)."""

    CE_TYPE = "continuum.api.name.v1"

    name: str


class EmptyRequest(Event, kw_only=True):
    CE_TYPE = "continuum.api.empty.v1"


class OkReply(Event, kw_only=True):
    CE_TYPE = "continuum.api.ok.v1"

    ok: bool = True
    message: str = ""

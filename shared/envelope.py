"""CloudEvents 1.0 envelope in binary content mode over NATS headers.

Attributes travel as `ce-*` headers, the data is the JSON message body, and
`Nats-Msg-Id` equals `ce-id` so JetStream drops a retried publish inside the
stream's duplicate window. W3C `traceparent` rides along (see `tracing`).

A message published by hand with only a subject and a JSON body is accepted:
missing attributes get defaults (`id` from `Nats-Msg-Id` or a new UUID,
`type` from the expected schema, `source` `unknown`, `time` now).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec

from continuum.shared.schemas import decode, encode

T = TypeVar("T")

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
MSG_ID_HEADER = "Nats-Msg-Id"


class CloudEvent(msgspec.Struct, Generic[T], kw_only=True):
    """A decoded event: the CloudEvents attributes and the typed data."""

    id: str
    source: str
    type: str
    time: datetime
    data: T
    specversion: str = SPEC_VERSION
    subject: str = ""
    content_type: str = CONTENT_TYPE
    headers: dict[str, str] = msgspec.field(default_factory=dict)


def new_event_id() -> str:
    return uuid.uuid4().hex


def build_headers(
    message: Any,
    *,
    source: str,
    event_id: str | None = None,
    event_type: str | None = None,
    time: datetime | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Return the CloudEvents headers for `message`, with `Nats-Msg-Id` set to the event id."""
    event_id = event_id or new_event_id()
    headers = {
        "ce-specversion": SPEC_VERSION,
        "ce-id": event_id,
        "ce-source": source,
        "ce-type": event_type or getattr(message, "CE_TYPE", "") or "continuum.message",
        "ce-time": (time or datetime.now(UTC)).isoformat(),
        "content-type": CONTENT_TYPE,
        MSG_ID_HEADER: event_id,
    }
    if extra:
        headers.update(extra)
    return headers


def to_nats(message: Any, *, source: str, event_id: str | None = None, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    """Encode `message` as (payload, headers) ready for `publish`."""
    return encode(message), build_headers(message, source=source, event_id=event_id, **kwargs)


def from_nats(data: bytes, headers: dict[str, str] | None, schema: type[T], *, subject: str = "") -> CloudEvent[T]:
    """Decode a NATS message into a CloudEvent of `schema`, filling in missing attributes.

    Raises SchemaError when the body does not match the schema.
    """
    headers = dict(headers or {})
    payload = decode(data, schema)
    event_id = headers.get("ce-id") or headers.get(MSG_ID_HEADER) or new_event_id()
    return CloudEvent(
        id=event_id,
        source=headers.get("ce-source", "unknown"),
        type=headers.get("ce-type") or getattr(schema, "CE_TYPE", "") or "continuum.message",
        time=_parse_time(headers.get("ce-time")),
        data=payload,
        specversion=headers.get("ce-specversion", SPEC_VERSION),
        subject=subject,
        content_type=headers.get("content-type", CONTENT_TYPE),
        headers=headers,
    )


def _parse_time(value: str | None) -> datetime:
    if value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.now(UTC)

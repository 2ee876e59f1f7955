"""Dead letters on `ctm.dlq.<stream>`: messages a consumer could not process."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from continuum.shared.schemas._base import Event, utcnow


class DeadLetter(Event, kw_only=True):
    """The original message with the error and where it failed.

    `payload` holds the original bytes as UTF-8 text when they decode, and as
    base64 otherwise (`payload_encoding` says which).
    """

    CE_TYPE = "continuum.dlq.v1"

    stream: str
    consumer: str
    subject: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    payload: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    error: str
    error_type: str = ""
    delivery_count: int = 1
    stream_sequence: int = 0
    service: str = ""
    at: datetime = msgspec.field(default_factory=utcnow)

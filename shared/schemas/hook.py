"""Verified inbound webhooks on `ctm.hook.<source>.<event>`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from continuum.shared.schemas._base import Event, utcnow


class WebhookEvent(Event, kw_only=True):
    """A webhook whose signature the bridge verified.

    `headers` keeps only the sender's event metadata; signatures and
    authorization headers are dropped before publishing.
    """

    CE_TYPE = "continuum.hook.v1"

    source: str
    event: str
    delivery_id: str
    body: Any
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    received_at: datetime = msgspec.field(default_factory=utcnow)

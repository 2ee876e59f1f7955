"""The inbound HTTP server: `POST /hooks/{source}`, `/healthz` and `/readyz`.

A webhook is answered 202 only after JetStream acknowledged the event on
`ctm.hook.<source>.<event>`. The event id is `<source>:<delivery id>`, so a
sender's retry of the same delivery within the HOOKS stream's one-hour
duplicate window is stored once. When JetStream does not acknowledge, the
answer is 503 with `Retry-After`, so the sender retries and nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
from aiohttp import web
from nats.js import JetStreamContext

from continuum.services.bridge.access import DELIVERY_ID_KEY, SOURCE_KEY
from continuum.services.bridge.errors import (
    InboundError,
    InvalidPayloadError,
    PayloadTooLargeError,
    UnknownSourceError,
)
from continuum.services.bridge.settings import BridgeSettings
from continuum.services.bridge.verify import Verifier, build_verifier
from continuum.shared import bus, subjects
from continuum.shared.errors import PublishError
from continuum.shared.schemas.hook import WebhookEvent

logger = logging.getLogger(__name__)

# Sender headers kept in the event: metadata only, never signatures, cookies or authorization.
_KEPT_HEADERS = (
    "content-type",
    "user-agent",
    "x-github-event",
    "x-github-delivery",
    "x-github-hook-id",
    "x-github-hook-installation-target-id",
    "x-github-hook-installation-target-type",
    "webhook-id",
    "webhook-timestamp",
)


class _TypeField(msgspec.Struct):
    """The one body field the bridge reads: a Standard Webhooks or generic sender's event `type`."""

    type: Any = None


# Decoding into msgspec.Raw validates the whole document without building Python objects, so a large
# body costs a parse only. The second decoder reads `type` and skips every other field.
_VALIDATE = msgspec.json.Decoder(msgspec.Raw)
_READ_TYPE = msgspec.json.Decoder(_TypeField | list | str | int | float | bool | None)
_ENCODE = msgspec.json.Encoder()


def _json_response(payload: dict[str, object], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODE.encode(payload), status=status, headers=headers, content_type="application/json")


class InboundApp:
    """Builds the aiohttp application; `ready` reports whether NATS is connected and HOOKS answers."""

    def __init__(self, settings: BridgeSettings, js: JetStreamContext, *, source: str, ready: Callable[[], Awaitable[bool]]) -> None:
        self.settings = settings
        self.js = js
        self.event_source = source
        self.ready = ready
        self.verifiers: dict[str, Verifier] = {name: build_verifier(name, config) for name, config in settings.sources.items()}
        self._kept_headers = set(_KEPT_HEADERS)
        for config in settings.sources.values():
            for header in (config.event_header, config.delivery_header):
                if header:
                    self._kept_headers.add(header.lower())
        self.accepted = 0
        self.rejected = 0

    def build(self) -> web.Application:
        # The body limit is enforced by `_read_body` so the 413 names the source; aiohttp's own limit sits above it.
        # Access records are written by `access.AccessLog`, which the service passes to the AppRunner.
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1)
        app.router.add_post("/hooks/{source}", self._handle_webhook)
        app.router.add_get("/healthz", self._handle_healthz)
        app.router.add_get("/readyz", self._handle_readyz)
        return app

    async def _handle_webhook(self, request: web.Request) -> web.Response:
        name = request.match_info["source"]
        request[SOURCE_KEY] = name
        try:
            verifier = self.verifiers.get(name)
            if verifier is None:
                raise UnknownSourceError(f"unknown webhook source {name!r}; configure it under [bridge.sources.{name}]", source=name)
            body = await self._read_body(request, name)
            verified = verifier.verify(request.headers, body)
            event_type = self._event_type(verified.event, body, name)
        except InboundError as exc:
            self.rejected += 1
            logger.warning("webhook rejected: %s", exc, extra={"source": name, "status": exc.status})
            return _json_response({"error": str(exc)}, exc.status)

        request[DELIVERY_ID_KEY] = verified.delivery_id

        event = WebhookEvent(
            source=name,
            event=event_type,
            delivery_id=verified.delivery_id,
            body=msgspec.Raw(body),
            headers={key.lower(): value for key, value in request.headers.items() if key.lower() in self._kept_headers},
        )
        subject = subjects.hook(name, event_type)
        try:
            ack = await bus.publish(
                self.js,
                subject,
                event,
                source=self.event_source,
                event_id=f"{name}:{verified.delivery_id}",
                expected_stream="HOOKS",
                timeout=self.settings.publish_timeout_s,
            )
        except (PublishError, nats.errors.Error, OSError) as exc:
            logger.warning("webhook not stored, responding 503: %s", exc, extra={"source": name, "delivery_id": verified.delivery_id})
            return _json_response(
                {"error": "the event store did not acknowledge the webhook; retry later"},
                503,
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )

        self.accepted += 1
        return _json_response(
            {"subject": subject, "delivery_id": verified.delivery_id, "duplicate": bool(ack.duplicate), "sequence": ack.seq},
            202,
        )

    async def _read_body(self, request: web.Request, name: str) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.content_length
        if declared is not None and declared > limit:
            raise PayloadTooLargeError(
                f"body of {declared} bytes is above the {limit}-byte limit (max_body_bytes)", source=name, size=declared, limit=limit
            )
        # A body can arrive in several TCP segments and `read(n)` returns what has arrived, so read until EOF.
        body = await request.content.read(limit + 1)
        if declared is None or len(body) < declared:
            parts = bytearray(body)
            while len(parts) <= limit:
                chunk = await request.content.read(limit + 1 - len(parts))
                if not chunk:
                    break
                parts += chunk
            body = bytes(parts)
        if len(body) > limit:
            raise PayloadTooLargeError(
                f"body is above the {limit}-byte limit (max_body_bytes)", source=name, size=len(body), limit=limit
            )
        return body

    def _event_type(self, header_event: str | None, body: bytes, name: str) -> str:
        """Validate the body as JSON and return the event type: the header's, else the body's `type`, else the default."""
        try:
            if header_event:
                _VALIDATE.decode(body)
                return header_event
            document = _READ_TYPE.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidPayloadError(f"body is not valid JSON: {exc}", source=name) from exc
        if isinstance(document, _TypeField) and isinstance(document.type, str) and document.type:
            return document.type
        return self.settings.sources[name].default_event

    async def _handle_healthz(self, request: web.Request) -> web.Response:
        return _json_response({"status": "ok"}, 200)

    async def _handle_readyz(self, request: web.Request) -> web.Response:
        if await self.ready():
            return _json_response({"status": "ready"}, 200)
        return _json_response({"status": "not ready", "reason": "NATS or the HOOKS stream does not answer"}, 503)

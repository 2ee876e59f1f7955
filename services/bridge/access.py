"""The access log of the inbound server: one INFO record per HTTP request, written after the response is sent.

aiohttp calls `AccessLog.log` once the response has been written, so the
record costs the client no latency, and no middleware wraps every handler.
The record carries method, path, status, duration, remote address, body
size, source and delivery id, and never headers or bodies.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

access_logger = logging.getLogger("continuum.services.bridge.access")

# Set by the webhook handler so the access record names the source and the delivery.
SOURCE_KEY = web.RequestKey("source", str)
DELIVERY_ID_KEY = web.RequestKey("delivery_id", str)


class AccessLog(AbstractAccessLogger):
    """aiohttp access logger writing structured records to `continuum.services.bridge.access`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d",
            request.method,
            request.path,
            response.status,
            extra={
                "http_method": request.method,
                "http_path": request.path,
                "http_status": response.status,
                "duration_ms": round(time * 1000, 2),
                "remote": request.remote,
                "body_bytes": request.content_length,
                "source": request.get(SOURCE_KEY),
                "delivery_id": request.get(DELIVERY_ID_KEY),
            },
        )

    @property
    def enabled(self) -> bool:
        # aiohttp reads this once per connection and skips `log` entirely when it is False.
        return self.logger.isEnabledFor(logging.INFO)

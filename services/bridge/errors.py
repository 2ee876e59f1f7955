"""Exceptions of the webhook bridge.

    BridgeError
    ├── SettingsError          invalid [bridge] configuration (also a ConfigError)
    ├── InboundError           a webhook request the bridge rejects; carries the HTTP status
    │   ├── UnknownSourceError     404: no source of that name is configured
    │   ├── PayloadTooLargeError   413: the body is above the size limit
    │   ├── SignatureError         401: missing, invalid or stale signature
    │   └── InvalidPayloadError    400: the body is not JSON, or a required header is missing
    └── TargetError            an outbound URL that is invalid or points at a rejected address
"""

from __future__ import annotations

from continuum.shared.errors import ConfigError, ContinuumError


class BridgeError(ContinuumError):
    """Root of the bridge's exceptions."""


class SettingsError(BridgeError, ConfigError):
    """An invalid value in the [bridge] configuration."""


class InboundError(BridgeError):
    """A rejected inbound webhook; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, *, source: str) -> None:
        super().__init__(message)
        self.source = source


class UnknownSourceError(InboundError):
    status = 404


class PayloadTooLargeError(InboundError):
    status = 413

    def __init__(self, message: str, *, source: str, size: int, limit: int) -> None:
        super().__init__(message, source=source)
        self.size = size
        self.limit = limit


class SignatureError(InboundError):
    status = 401


class InvalidPayloadError(InboundError):
    status = 400


class TargetError(BridgeError):
    """An outbound webhook URL that is invalid or resolves to a rejected address."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url

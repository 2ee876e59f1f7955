"""Signature verification for the three inbound schemes: GitHub, Standard Webhooks and generic HMAC.

Each verifier checks the signature over the raw body against every secret
of its source (so secrets can rotate) with constant-time comparison, and
returns the event type and the delivery id. Event types are taken from
headers here; `standard` sources may refine theirs from the JSON body's
`type` field after parsing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

from continuum.services.bridge.errors import InvalidPayloadError, SettingsError, SignatureError
from continuum.services.bridge.settings import SourceSettings, resolve_secrets


@dataclass(frozen=True)
class Verified:
    """The sender's event type and delivery id, established by a valid signature."""

    event: str | None
    delivery_id: str


def _hmac_sha256(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()


def _matches_any(expected: list[bytes], received: bytes) -> bool:
    """Compare against every candidate without stopping early, so timing shows neither which nor whether."""
    matched = False
    for candidate in expected:
        matched |= hmac.compare_digest(candidate, received)
    return matched


class Verifier:
    """Base: subclasses implement `verify(headers, body)` for one source."""

    def __init__(self, name: str, settings: SourceSettings) -> None:
        self.name = name
        self.settings = settings
        self.secrets = resolve_secrets(settings, name)

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        raise NotImplementedError

    def _required(self, headers: Mapping[str, str], header: str) -> str:
        value = headers.get(header)
        if not value:
            raise InvalidPayloadError(f"missing {header} header", source=self.name)
        return value


class GitHubVerifier(Verifier):
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, event and delivery from X-GitHub-* headers."""

    HEADER = "X-Hub-Signature-256"

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self._keys = [secret.encode() for secret in self.secrets]

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        signature = headers.get(self.HEADER)
        if not signature:
            raise SignatureError(f"missing {self.HEADER} header", source=self.name)
        if not signature.startswith("sha256="):
            raise SignatureError(f"invalid {self.HEADER} header: expected 'sha256=<hex digest>'", source=self.name)
        try:
            received = bytes.fromhex(signature.removeprefix("sha256="))
        except ValueError as exc:
            raise SignatureError(f"invalid {self.HEADER} header: the digest is not hex", source=self.name) from exc
        if not _matches_any([_hmac_sha256(key, body) for key in self._keys], received):
            raise SignatureError(f"invalid {self.HEADER}: no configured secret matches", source=self.name)

        return Verified(
            event=self._required(headers, "X-GitHub-Event"),
            delivery_id=self._required(headers, "X-GitHub-Delivery"),
        )


class StandardVerifier(Verifier):
    """Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature` (`v1,<base64>` tokens).

    Signatures are computed with the `standardwebhooks` library. The
    timestamp is checked here, because the library (1.3) fixes its
    tolerance at five minutes and this one is configurable.
    """

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self._webhooks = []
        for index, secret in enumerate(self.secrets):
            try:
                self._webhooks.append(Webhook(secret))
            except Exception as exc:  # noqa: BLE001 - the library raises binascii.Error, EmptyWebhookSecretError and others
                raise SettingsError(
                    f"secret #{index + 1} of webhook source {name!r} is not a Standard Webhooks key: "
                    f"expected 'whsec_' followed by base64",
                    key=f"bridge.sources.{name}.secrets",
                ) from exc

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        message_id = headers.get("webhook-id", "")
        timestamp_text = headers.get("webhook-timestamp", "")
        signature = headers.get("webhook-signature", "")
        required = {"webhook-id": message_id, "webhook-timestamp": timestamp_text, "webhook-signature": signature}
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise SignatureError(f"missing {', '.join(missing)} header", source=self.name)

        timestamp = self._check_timestamp(timestamp_text)
        received = [token.encode() for token in signature.split(" ") if token.startswith("v1,")]
        if not received:
            raise SignatureError("invalid webhook-signature: no 'v1,<base64>' signature", source=self.name)
        expected = [webhook.sign(message_id, timestamp, body).encode() for webhook in self._webhooks]
        matched = False
        for token in received:
            matched |= _matches_any(expected, token)
        if not matched:
            raise SignatureError("invalid webhook-signature: no configured secret matches", source=self.name)
        return Verified(event=None, delivery_id=message_id)

    def _check_timestamp(self, text: str) -> datetime:
        try:
            seconds = int(text)
        except ValueError as exc:
            raise SignatureError(f"invalid webhook-timestamp {text[:20]!r}: expected Unix seconds", source=self.name) from exc
        skew = time.time() - seconds
        if abs(skew) > self.settings.tolerance_s:
            direction = "old" if skew > 0 else "far in the future"
            raise SignatureError(
                f"stale webhook-timestamp: {abs(skew):.0f}s {direction}, the tolerance is {self.settings.tolerance_s:.0f}s",
                source=self.name,
            )
        return datetime.fromtimestamp(seconds, UTC)


class HmacVerifier(Verifier):
    """Generic HMAC-SHA256 of the raw body in a configurable header, hex or base64, with an optional prefix."""

    def __init__(self, name: str, settings: SourceSettings) -> None:
        super().__init__(name, settings)
        self._keys = [secret.encode() for secret in self.secrets]

    def verify(self, headers: Mapping[str, str], body: bytes) -> Verified:
        header = self.settings.signature_header
        signature = headers.get(header)
        if not signature:
            raise SignatureError(f"missing {header} header", source=self.name)
        received = self._decode(signature.strip().removeprefix(self.settings.signature_prefix), header)
        if not _matches_any([_hmac_sha256(key, body) for key in self._keys], received):
            raise SignatureError(f"invalid {header}: no configured secret matches", source=self.name)

        event = headers.get(self.settings.event_header) if self.settings.event_header else None
        delivery_id = headers.get(self.settings.delivery_header) if self.settings.delivery_header else None
        # Without a delivery header, identical bodies count as one delivery, so a sender's retry is stored once.
        return Verified(event=event, delivery_id=delivery_id or hashlib.sha256(body).hexdigest())

    def _decode(self, text: str, header: str) -> bytes:
        try:
            if self.settings.signature_encoding == "hex":
                return bytes.fromhex(text)
            return base64.b64decode(text, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise SignatureError(
                f"invalid {header} header: the digest is not {self.settings.signature_encoding}", source=self.name
            ) from exc


_VERIFIERS: dict[str, type[Verifier]] = {"github": GitHubVerifier, "standard": StandardVerifier, "hmac": HmacVerifier}


def build_verifier(name: str, settings: SourceSettings) -> Verifier:
    return _VERIFIERS[settings.scheme](name, settings)

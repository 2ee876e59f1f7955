"""The `[bridge]` settings: HTTP listener, inbound sources and their secrets, outbound delivery.

Example TOML:

    [bridge]
    port = 8787

    [bridge.sources.github]
    scheme = "github"
    secrets = ["current-secret", "previous-secret"]

    [bridge.sources.billing]
    scheme = "standard"
    secret_files = ["/run/secrets/billing-whsec"]
    tolerance_s = 300

    [bridge.sources.shop]
    scheme = "hmac"
    secrets = ["shop-secret"]
    signature_header = "X-Shop-Signature"
    signature_prefix = "sha256="
    event_header = "X-Shop-Topic"
    delivery_header = "X-Shop-Delivery"

`CONTINUUM_BRIDGE_SOURCES` takes the whole sources table as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

from continuum.services.bridge.errors import SettingsError
from continuum.shared import subjects
from continuum.shared.config import load_section
from continuum.shared.errors import SubjectError
from continuum.shared.logs import register_secret

Scheme = Literal["github", "standard", "hmac"]


class SourceSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One inbound webhook source.

    Every secret in `secrets` and in the files of `secret_files` is accepted,
    so a sender can move to a new secret while the old one still verifies.
    `tolerance_s` is the accepted clock difference, in seconds, of a Standard
    Webhooks timestamp. The `hmac` scheme reads a hex (or base64) HMAC-SHA256
    of the raw body from `signature_header`, after stripping `signature_prefix`.
    """

    scheme: Scheme
    secrets: list[str] = msgspec.field(default_factory=list)
    secret_files: list[str] = msgspec.field(default_factory=list)
    tolerance_s: float = 300.0
    signature_header: str = "X-Signature-256"
    signature_prefix: str = "sha256="
    signature_encoding: Literal["hex", "base64"] = "hex"
    event_header: str | None = None
    delivery_header: str | None = None
    default_event: str = "webhook"


class BridgeSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """HTTP listener, inbound sources and outbound delivery settings.

    `event_loop` is `auto` (uvloop when installed, else asyncio), `uvloop`
    or `asyncio`.
    `allowed_target_networks` lists CIDRs that outbound targets may resolve
    to even though they are private, loopback or link-local (for example
    `["10.0.0.0/8"]`); every other private address is rejected.
    Backoff before attempt n+1 is `retry_base_s * 2**(n-1)`, capped at
    `retry_max_s`, with full jitter.
    """

    host: str = "127.0.0.1"
    port: int = 8787
    max_body_bytes: int = 512 * 1024
    publish_timeout_s: float = 2.0
    retry_after_s: int = 5
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    sources: dict[str, SourceSettings] = msgspec.field(default_factory=dict)

    deliveries_enabled: bool = True
    delivery_timeout_s: float = 10.0
    max_attempts: int = 8
    retry_base_s: float = 2.0
    retry_max_s: float = 600.0
    delivery_concurrency: int = 32
    allowed_target_networks: list[str] = msgspec.field(default_factory=list)


def load_bridge_settings(path: str | None = None, env: dict[str, str] | None = None) -> BridgeSettings:
    """Load `[bridge]` from TOML and `CONTINUUM_BRIDGE_*` variables, then check it."""
    settings = load_section("bridge", BridgeSettings, path, env)
    validate(settings)
    return settings


def validate(settings: BridgeSettings) -> None:
    """Raise SettingsError naming the first invalid value and how to fix it."""
    if not 0 <= settings.port <= 65535:
        raise SettingsError(f"invalid [bridge] port {settings.port}: expected 0-65535", key="bridge.port")
    if settings.max_body_bytes <= 0:
        raise SettingsError(f"invalid [bridge] max_body_bytes {settings.max_body_bytes}: expected > 0", key="bridge.max_body_bytes")
    if not 1 <= settings.max_attempts <= 40:
        raise SettingsError(
            f"invalid [bridge] max_attempts {settings.max_attempts}: expected 1-40 "
            f"(the bridge-deliveries consumer allows at most 50 deliveries)",
            key="bridge.max_attempts",
        )
    if settings.delivery_timeout_s >= 55:
        raise SettingsError(
            f"invalid [bridge] delivery_timeout_s {settings.delivery_timeout_s}: expected < 55 s, "
            f"below the 60 s ack wait of the bridge-deliveries consumer",
            key="bridge.delivery_timeout_s",
        )
    for name, source in settings.sources.items():
        try:
            subjects.validate_name(name, kind="webhook source")
        except SubjectError as exc:
            raise SettingsError(f"invalid [bridge.sources] key: {exc}", key=f"bridge.sources.{name}") from exc
        if not resolve_secrets(source, name):
            raise SettingsError(
                f"webhook source {name!r} has no secret; set secrets or secret_files under [bridge.sources.{name}]",
                key=f"bridge.sources.{name}",
            )


def resolve_secrets(source: SourceSettings, name: str) -> list[str]:
    """Return the inline secrets followed by those read from `secret_files`, each registered for log masking."""
    secrets = [secret for secret in source.secrets if secret]
    for file in source.secret_files:
        try:
            text = Path(file).read_text().strip()
        except OSError as exc:
            raise SettingsError(
                f"cannot read secret_file {file!r} of webhook source {name!r}: {exc.strerror}",
                key=f"bridge.sources.{name}.secret_files",
            ) from exc
        if not text:
            raise SettingsError(f"secret_file {file!r} of webhook source {name!r} is empty", key=f"bridge.sources.{name}")
        secrets.append(text)
    for secret in secrets:
        register_secret(secret)
    return secrets

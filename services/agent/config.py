"""Agent settings: the `[agent]` TOML table and `CONTINUUM_AGENT_*` variables.

The node id comes from the flag, the environment or the TOML file; when none
sets it, the agent generates one from the host name and stores it in
`<state_dir>/node_id`, so a restart keeps the same identity.
"""

from __future__ import annotations

import logging
import re
import socket
import uuid
from pathlib import Path
from typing import Any

import msgspec

from continuum.shared import subjects
from continuum.shared.config import ConfigError, load_section
from continuum.shared.schemas.common import Resources, Taint

logger = logging.getLogger(__name__)


class AgentSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Identity, reservations and limits of one edge agent.

    `reserved` is held back for the operating system and is never offered to
    replicas. `peers` are node ids whose ping responders this agent measures.
    Times are in seconds, memory in MiB.
    """

    node_id: str | None = None
    zone: str = ""
    site: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    taints: list[Taint] = msgspec.field(default_factory=list)
    reserved: Resources = msgspec.field(default_factory=Resources)
    peers: list[str] = msgspec.field(default_factory=list)
    state_dir: str | None = None
    telemetry_interval_s: float = 1.0
    artifact_bucket: str = "ctm-artifacts"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    max_queued_invocations: int = 64
    worker_start_timeout_s: float = 30.0
    wasm_fuel: int = 5_000_000_000
    wasm_memory_mb: int = 128
    autoscale_interval_s: float = 2.0
    ping_timeout_s: float = 0.5


def load_agent_settings(
    config_path: str | None, shared_state_dir: str, overrides: dict[str, Any] | None = None
) -> AgentSettings:
    """Load `[agent]` settings, apply command-line overrides, and validate them."""
    settings = load_section("agent", AgentSettings, config_path)
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(settings, key, value)
    if settings.state_dir is None:
        settings.state_dir = str(Path(shared_state_dir) / "agent")
    _validate(settings)
    return settings


def _validate(settings: AgentSettings) -> None:
    if settings.telemetry_interval_s <= 0:
        raise ConfigError(
            f"invalid [agent] telemetry_interval_s={settings.telemetry_interval_s}: must be greater than 0",
            key="telemetry_interval_s",
        )
    if settings.max_queued_invocations < 1:
        raise ConfigError(
            f"invalid [agent] max_queued_invocations={settings.max_queued_invocations}: must be at least 1",
            key="max_queued_invocations",
        )
    for peer in settings.peers:
        try:
            subjects.validate_node_id(peer)
        except ValueError as exc:
            raise ConfigError(f"invalid [agent] peers entry: {exc}", key="peers") from exc


def resolve_node_id(settings: AgentSettings) -> str:
    """Return the configured node id, or the one stored in the state directory, or a new stored one."""
    if settings.node_id:
        try:
            return subjects.validate_node_id(settings.node_id)
        except ValueError as exc:
            raise ConfigError(f"{exc} (set by --node-id or CONTINUUM_AGENT_NODE_ID)", key="node_id") from exc

    path = Path(settings.state_dir or ".") / "node_id"
    if path.exists():
        stored = path.read_text().strip()
        try:
            return subjects.validate_node_id(stored)
        except ValueError as exc:
            raise ConfigError(f"{exc} (read from {path}; delete the file to generate a new id)", key="node_id") from exc

    host = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "node"
    node_id = f"{host}-{uuid.uuid4().hex[:6]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(node_id + "\n")
    logger.info("generated node id %s and stored it in %s", node_id, path)
    return node_id


def parse_taint(text: str) -> Taint:
    """Parse `key=value:Effect` (value and effect optional) into a Taint."""
    key_value, _, effect = text.partition(":")
    key, _, value = key_value.partition("=")
    if not key:
        raise ConfigError(f"invalid taint {text!r}: expected key=value:Effect, for example gpu=true:NoSchedule")
    if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ConfigError(f"invalid taint effect {effect!r} in {text!r}: use NoSchedule, PreferNoSchedule or NoExecute")
    return Taint(key=key, value=value, effect=effect or "NoSchedule")  # type: ignore[arg-type]

"""Configuration from `CONTINUUM_*` environment variables and an optional TOML file.

Precedence, highest first: environment variables, the TOML file named by
`--config` or `CONTINUUM_CONFIG`, then defaults. Every key maps to one
variable: `[nats] url` is `CONTINUUM_NATS_URL`, `[agent] node_id` is
`CONTINUUM_AGENT_NODE_ID`, top-level `log_format` is `CONTINUUM_LOG_FORMAT`.
Lists take JSON or comma-separated values; tables take JSON or `k=v,k2=v2`.

Services define their own settings Struct and load it with `load_section`.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from continuum.shared.errors import ConfigError

T = TypeVar("T", bound=msgspec.Struct)

ENV_PREFIX = "CONTINUUM_"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"

# Field names whose values are secrets: never logged, masked in `redacted()`.
SECRET_FIELDS = frozenset({"password", "token", "secret", "secrets", "nkey_seed", "secret_access_key", "api_key"})


class NatsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How to reach NATS. Only one of user/password, token, creds_file or nkey_seed_file is used."""

    url: str = DEFAULT_NATS_URL
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_hostname: str | None = None
    connect_timeout_s: float = 2.0
    initial_connect_timeout_s: float = 10.0
    max_reconnect_attempts: int = -1
    reconnect_wait_s: float = 1.0


class JetStreamSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Replica count of every stream and bucket, and the JetStream domain, if any."""

    replicas: int = 1
    domain: str | None = None
    max_message_bytes: int = 1024 * 1024
    stream_max_bytes: int = -1
    duplicate_window_s: float = 120.0


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Settings every Continuum process shares."""

    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    jetstream: JetStreamSettings = msgspec.field(default_factory=JetStreamSettings)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    state_dir: str = ".continuum"

    def redacted(self) -> dict[str, Any]:
        """Return the settings as a dict with every secret replaced by `***`."""
        return redact(msgspec.to_builtins(self))


def redact(value: Any) -> Any:
    """Mask secret fields in a nested dict or list of settings."""
    if isinstance(value, dict):
        return {
            key: ("***" if key in SECRET_FIELDS and item else redact(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def read_toml(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the TOML config file, or return {} when none is configured.

    A path given explicitly, or through CONTINUUM_CONFIG, must exist.
    """
    env = os.environ if env is None else env
    chosen = path or env.get(f"{ENV_PREFIX}CONFIG")
    if not chosen:
        return {}

    file = Path(chosen)
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {str(file)!r} not found; fix the path or unset CONTINUUM_CONFIG") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(file)!r} is not valid TOML: {exc}") from exc


def load_settings(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the shared settings from the TOML file and the environment."""
    env = os.environ if env is None else env
    document = read_toml(path, env)
    shared = {key: document[key] for key in _field_names(Settings) if key in document}
    return _build(Settings, shared, ENV_PREFIX, env, where="config")


def load_section(
    section: str,
    schema: type[T],
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> T:
    """Load one service's `[section]` table, overlaid with `CONTINUUM_<SECTION>_*` variables."""
    env = os.environ if env is None else env
    document = read_toml(path, env)
    table = document.get(section, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config key [{section}] must be a table, got {type(table).__name__}", key=section)
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    return _build(schema, dict(table), prefix, env, where=f"[{section}]")


def _build(schema: type[T], data: dict[str, Any], prefix: str, env: Mapping[str, str], *, where: str) -> T:
    _overlay_env(schema, data, prefix, env)
    try:
        return msgspec.convert(data, type=schema, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration in {where}: {exc}; check the TOML file and {prefix}* variables") from exc


def _field_names(schema: type[msgspec.Struct]) -> list[str]:
    return [field.name for field in msgspec.structs.fields(schema)]


def _overlay_env(schema: type[msgspec.Struct], data: dict[str, Any], prefix: str, env: Mapping[str, str]) -> None:
    """Write every `prefix + FIELD` variable found in `env` into `data`, recursing into nested Structs."""
    hints = typing.get_type_hints(schema)
    for field in msgspec.structs.fields(schema):
        variable = f"{prefix}{field.name.upper()}"
        annotation = hints[field.name]
        nested = _struct_type(annotation)
        if nested is not None:
            inner = data.get(field.name)
            inner = dict(inner) if isinstance(inner, dict) else {}
            _overlay_env(nested, inner, f"{variable}_", env)
            if inner:
                data[field.name] = inner
            continue
        if variable in env:
            data[field.name] = _parse_env_value(env[variable], annotation, variable)


def _struct_type(annotation: Any) -> type[msgspec.Struct] | None:
    candidates = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        candidates = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _parse_env_value(raw: str, annotation: Any, variable: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if raw == "":
            return None
        origin = typing.get_origin(args[0]) if len(args) == 1 else None

    if origin in (list, tuple, set, frozenset):
        if raw.lstrip().startswith("["):
            return _parse_json(raw, variable)
        return [item.strip() for item in raw.split(",") if item.strip()]
    if origin is dict:
        if raw.lstrip().startswith("{"):
            return _parse_json(raw, variable)
        pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ConfigError(f"invalid {variable}={raw!r}: expected JSON or k=v,k2=v2", key=variable)
        return {key.strip(): value.strip() for key, value in pairs}
    return raw


def _parse_json(raw: str, variable: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"invalid {variable}: not valid JSON ({exc})", key=variable) from exc

"""Base classes and the JSON codec shared by every message schema.

Unknown fields, decided per boundary:

- `Event` (service-to-service messages on the bus) ignores unknown fields, so
  a newer producer that adds a field never breaks an older consumer.
- `Document` (files and requests that people write: workload specs, policies,
  webhook subscriptions) rejects unknown fields, so a typo such as `replica`
  for `replicas` is an error instead of a silent default.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import msgspec

from continuum.shared.errors import SchemaError

T = TypeVar("T")

_PATH_PATTERN = re.compile(r" - at `(?P<path>[^`]+)`$")

_encoder = msgspec.json.Encoder()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(msgspec.Struct, kw_only=True):
    """A message that one service publishes and others consume.

    `CE_TYPE` is the CloudEvents type, which ends with the schema version
    (`continuum.telemetry.v1`); a breaking change gets a new type.
    """

    CE_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


class Document(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A document written by people; unknown fields are rejected."""

    CE_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1


def encode(message: Any) -> bytes:
    """Encode a message (or any msgspec-compatible value) as JSON bytes."""
    return _encoder.encode(message)


def decode(data: bytes | str, schema: type[T]) -> T:
    """Decode JSON into `schema`, raising SchemaError with the failing field path.

    The message follows msgspec's form, for example
    "invalid Telemetry: Expected `int`, got `str` - at `$.seq`".
    """
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError as exc:
        raise _schema_error(schema, exc) from exc
    except msgspec.DecodeError as exc:
        name = _schema_name(schema)
        raise SchemaError(f"invalid {name}: payload is not valid JSON ({exc})", schema=name) from exc


def convert(value: Any, schema: type[T]) -> T:
    """Validate an already-parsed value (from YAML or TOML, say) against `schema`."""
    try:
        return msgspec.convert(value, type=schema, strict=False)
    except msgspec.ValidationError as exc:
        raise _schema_error(schema, exc) from exc


def to_builtins(message: Any) -> Any:
    """Return `message` as plain dicts, lists and scalars (for tables and YAML)."""
    return msgspec.to_builtins(message)


def _schema_name(schema: Any) -> str:
    return getattr(schema, "__name__", str(schema))


def _schema_error(schema: Any, exc: msgspec.ValidationError) -> SchemaError:
    name = _schema_name(schema)
    text = str(exc)
    match = _PATH_PATTERN.search(text)
    path = match.group("path") if match else None
    return SchemaError(f"invalid {name}: {text}", schema=name, path=path)

"""Logging setup: text or JSON records with message context and secret masking.

Context ids (subject, stream, message id, node, workload, ...) travel in a
context variable, so everything logged while a message is handled carries
them without passing a logger around:

    with log_context(subject=msg.subject, msg_id=event_id):
        logger.info("applied placement")
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("continuum_log_context", default={})

# Values registered as secrets are replaced by *** in every formatted record.
_secrets: set[str] = set()

_STANDARD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask `value` in every log line from now on; short values are ignored to avoid masking common words."""
    if value and len(value) >= 4:
        _secrets.add(value)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add `fields` to every record logged inside the block (None values are skipped)."""
    merged = {**_context.get(), **{key: value for key, value in fields.items() if value is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def bind_context(**fields: Any) -> None:
    """Add `fields` to the context of the current task for the rest of its life (a service name, say)."""
    _context.set({**_context.get(), **{key: value for key, value in fields.items() if value is not None}})


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES}


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        line = f"{timestamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extra_fields(record)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in sorted(extras.items()))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _mask(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the context ids as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_extra_fields(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return _mask(json.dumps(payload, default=str))


def setup_logging(level: str = "INFO", fmt: str = "text", *, service: str | None = None) -> None:
    """Configure the root logger once per process; `fmt` is `text` or `json`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())

    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())

    # nats-py logs every reconnect attempt at ERROR; the bus callbacks log them once with context.
    logging.getLogger("nats").setLevel(logging.CRITICAL)
    if service:
        bind_context(service=service)

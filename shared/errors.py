"""Exceptions raised by the shared library.

    ContinuumError
    ├── ConfigError            invalid or missing configuration value
    ├── SchemaError            a payload does not match its message schema
    ├── SubjectError           an invalid subject or subject token
    ├── NatsServerError        nats-server missing, too old, or failed to start
    ├── BusError               a JetStream operation failed
    │   └── PublishError       no PubAck, or a PubAck from an unexpected stream
    ├── TransientError         a handler failed but a retry may succeed (nak)
    └── PermanentError         a handler can never process the message (term + DLQ)

Services define their own root exception that subclasses ContinuumError.
"""

from __future__ import annotations


class ContinuumError(Exception):
    """Root of every exception that Continuum raises on purpose."""


class ConfigError(ContinuumError):
    """An invalid or missing configuration value."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class SchemaError(ContinuumError):
    """A payload that does not decode into its message schema.

    `path` is the JSON path of the offending field (for example `$.replicas`)
    when the decoder reports one.
    """

    def __init__(self, message: str, *, schema: str, path: str | None = None) -> None:
        super().__init__(message)
        self.schema = schema
        self.path = path


class SubjectError(ContinuumError, ValueError):
    """An invalid subject, or a token that cannot be used inside one."""

    def __init__(self, message: str, *, value: str) -> None:
        super().__init__(message)
        self.value = value


class NatsServerError(ContinuumError):
    """The nats-server binary is missing, too old, or did not start."""


class BusError(ContinuumError):
    """A NATS or JetStream operation failed."""


class PublishError(BusError):
    """A JetStream publish got no PubAck, or a PubAck from the wrong stream."""

    def __init__(self, message: str, *, subject: str) -> None:
        super().__init__(message)
        self.subject = subject


class TransientError(ContinuumError):
    """A handler failure that a later delivery may not hit (the message is nak'd).

    `delay` overrides the consumer's backoff for this message, in seconds.
    """

    def __init__(self, message: str, *, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class PermanentError(ContinuumError):
    """A handler failure that no redelivery can fix (the message goes to the DLQ)."""

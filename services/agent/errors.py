"""Exceptions of the edge agent.

    AgentError
    ├── ArtifactError          an artifact cannot be fetched, verified or unpacked
    ├── RuntimeUnavailable     the placement asks for a runtime this node lacks
    ├── ReplicaStartError      a worker or module failed to start
    └── InvocationFailure      one invocation failed; carries the InvokeError code

`InvocationFailure.message` is sent to the caller, so it must never contain
agent internals (paths, settings, tracebacks of the agent itself).
"""

from __future__ import annotations

from continuum.shared.errors import ContinuumError
from continuum.shared.schemas.invoke import InvokeError, InvokeErrorCode


class AgentError(ContinuumError):
    """Root of every exception the agent raises on purpose."""


class ArtifactError(AgentError):
    """An artifact that is missing, fails its digest check, or cannot be unpacked."""

    def __init__(self, message: str, *, artifact: str) -> None:
        super().__init__(message)
        self.artifact = artifact


class RuntimeUnavailable(AgentError):
    """A workload runtime that this node does not provide."""


class ReplicaStartError(AgentError):
    """A replica whose worker process or module did not become ready."""


class InvocationFailure(AgentError):
    """One failed invocation, with the code and caller-safe message of its reply."""

    def __init__(self, code: InvokeErrorCode, message: str, *, error_type: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_type = error_type

    def to_error(self) -> InvokeError:
        return InvokeError(code=self.code, message=self.message, error_type=self.error_type)

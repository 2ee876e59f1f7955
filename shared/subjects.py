"""Subject builders and parsers for every subject on the Continuum bus.

All subjects live under the root `ctm`. Tokens that come from users (node
ids, workload and function names, collections, webhook sources, topics, job
ids) must be names: letters, digits, `-` and `_`, at most 128 characters.
Dots, wildcards, spaces and empty tokens are rejected so that a name can
never widen a subscription or split into two tokens.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from continuum.shared.errors import SubjectError

ROOT = "ctm"
MAX_TOKEN_LENGTH = 128

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")

# `ctm.placement.failed` shares the placement prefix, so no node may be called
# `failed`. The webhook event token may contain dots in the source system (for
# example `invoice.paid`); `hook_subject` maps them to `_`.
RESERVED_NODE_IDS = frozenset({"failed"})


def validate_name(value: str, *, kind: str = "name") -> str:
    """Return `value` if it is a valid subject token, else raise SubjectError.

    `kind` names what the token is (node id, workload name, ...) so the error
    tells the caller which input to fix.
    """
    if not isinstance(value, str) or value == "":
        raise SubjectError(f"invalid {kind}: empty; use letters, digits, '-' or '_'", value=str(value))
    if len(value) > MAX_TOKEN_LENGTH:
        raise SubjectError(
            f"invalid {kind} {value[:40]!r}...: {len(value)} characters, the maximum is {MAX_TOKEN_LENGTH}",
            value=value,
        )
    if not _NAME_PATTERN.fullmatch(value):
        bad = sorted({ch for ch in value if not _NAME_PATTERN.fullmatch(ch)})
        shown = ", ".join(repr(ch) for ch in bad)
        raise SubjectError(
            f"invalid {kind} {value!r}: contains {shown}; use only letters, digits, '-' and '_'",
            value=value,
        )
    return value


def validate_node_id(value: str) -> str:
    validate_name(value, kind="node id")
    if value in RESERVED_NODE_IDS:
        raise SubjectError(f"invalid node id {value!r}: the name is reserved; choose another", value=value)
    return value


def sanitize_token(value: str) -> str:
    """Map an external identifier (a webhook event type, say) to a valid token.

    Characters outside the name alphabet become `_`; an empty result is `unknown`.
    """
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", value)[:MAX_TOKEN_LENGTH]
    return cleaned or "unknown"


# Builders -----------------------------------------------------------------


def telemetry(node_id: str) -> str:
    return f"{ROOT}.telemetry.{validate_node_id(node_id)}"


def node_lifecycle(node_id: str) -> str:
    return f"{ROOT}.node.{validate_node_id(node_id)}.lifecycle"


def placement(node_id: str) -> str:
    return f"{ROOT}.placement.{validate_node_id(node_id)}"


PLACEMENT_FAILED = f"{ROOT}.placement.failed"


def workload_status(workload: str) -> str:
    return f"{ROOT}.workload.{validate_name(workload, kind='workload name')}.status"


def agent_ping(node_id: str) -> str:
    return f"{ROOT}.agent.{validate_node_id(node_id)}.ping"


def function(name: str) -> str:
    """Invocation subject of a function; replicas share it as their queue group."""
    return f"{ROOT}.fn.{validate_name(name, kind='function name')}"


INGEST = f"{ROOT}.ingest"


def ingest_status(job_id: str) -> str:
    return f"{ROOT}.ingest.{validate_name(job_id, kind='job id')}.status"


def chunks(collection: str) -> str:
    return f"{ROOT}.chunks.{validate_name(collection, kind='collection name')}"


EMBED = f"{ROOT}.embed"


def guard_in(topic: str) -> str:
    return f"{ROOT}.guard.in.{validate_name(topic, kind='guard topic')}"


def guard_out(topic: str) -> str:
    return f"{ROOT}.guard.out.{validate_name(topic, kind='guard topic')}"


def guard_blocked(topic: str) -> str:
    return f"{ROOT}.guard.blocked.{validate_name(topic, kind='guard topic')}"


def guard_audit(topic: str) -> str:
    return f"{ROOT}.guard.audit.{validate_name(topic, kind='guard topic')}"


def hook(source: str, event: str) -> str:
    """Subject of a verified inbound webhook; `event` is sanitized, `source` validated."""
    return f"{ROOT}.hook.{validate_name(source, kind='webhook source')}.{sanitize_token(event)}"


def webhook_delivery(subscription_id: str) -> str:
    """Subject of an outbound delivery task for one webhook subscription."""
    return f"{ROOT}.webhook.delivery.{validate_name(subscription_id, kind='webhook subscription id')}"


def webhook_attempt(subscription_id: str) -> str:
    """Subject of the attempt records of one webhook subscription."""
    return f"{ROOT}.webhook.attempt.{validate_name(subscription_id, kind='webhook subscription id')}"


def dlq(stream: str) -> str:
    return f"{ROOT}.dlq.{validate_name(stream, kind='stream name')}"


def api(endpoint: str) -> str:
    return f"{ROOT}.api.{validate_name(endpoint, kind='API endpoint')}"


def vector(endpoint: str) -> str:
    return f"{ROOT}.vector.{validate_name(endpoint, kind='vector endpoint')}"


def guard(endpoint: str) -> str:
    return f"{ROOT}.guard.{validate_name(endpoint, kind='guard endpoint')}"


def rag(endpoint: str) -> str:
    return f"{ROOT}.rag.{validate_name(endpoint, kind='RAG endpoint')}"


# Wildcards used by consumers and permissions.
ALL_TELEMETRY = f"{ROOT}.telemetry.*"
ALL_LIFECYCLE = f"{ROOT}.node.*.lifecycle"
ALL_PLACEMENTS = f"{ROOT}.placement.*"
ALL_WORKLOAD_STATUS = f"{ROOT}.workload.*.status"
ALL_INGEST_STATUS = f"{ROOT}.ingest.*.status"
ALL_CHUNKS = f"{ROOT}.chunks.*"
ALL_GUARD_IN = f"{ROOT}.guard.in.*"
ALL_HOOKS = f"{ROOT}.hook.*.*"
ALL_DLQ = f"{ROOT}.dlq.*"
ALL_WEBHOOK_DELIVERIES = f"{ROOT}.webhook.delivery.*"
ALL_WEBHOOK_ATTEMPTS = f"{ROOT}.webhook.attempt.*"


# Parsers ------------------------------------------------------------------


class ParsedSubject(NamedTuple):
    """A subject split into its kind (`telemetry`, `placement`, ...) and its tokens."""

    kind: str
    tokens: tuple[str, ...]


# kind -> token pattern after the root, `*` standing for one name token.
_PATTERNS: dict[str, tuple[str, ...]] = {
    "telemetry": ("telemetry", "*"),
    "node_lifecycle": ("node", "*", "lifecycle"),
    "placement_failed": ("placement", "failed"),
    "placement": ("placement", "*"),
    "workload_status": ("workload", "*", "status"),
    "agent_ping": ("agent", "*", "ping"),
    "function": ("fn", "*"),
    "ingest": ("ingest",),
    "ingest_status": ("ingest", "*", "status"),
    "chunks": ("chunks", "*"),
    "embed": ("embed",),
    "guard_in": ("guard", "in", "*"),
    "guard_out": ("guard", "out", "*"),
    "guard_blocked": ("guard", "blocked", "*"),
    "guard_audit": ("guard", "audit", "*"),
    "hook": ("hook", "*", "*"),
    "webhook_delivery": ("webhook", "delivery", "*"),
    "webhook_attempt": ("webhook", "attempt", "*"),
    "dlq": ("dlq", "*"),
    "api": ("api", "*"),
    "vector": ("vector", "*"),
    "guard": ("guard", "*"),
    "rag": ("rag", "*"),
}


def parse(subject: str) -> ParsedSubject:
    """Split a concrete Continuum subject into its kind and name tokens.

    Raises SubjectError for a subject outside the catalog or with an invalid
    token. The first matching pattern wins, so `ctm.placement.failed` parses as
    `placement_failed`, never as a placement for a node called `failed`.
    """
    parts = subject.split(".")
    if len(parts) < 2 or parts[0] != ROOT:
        raise SubjectError(f"invalid subject {subject!r}: expected it to start with '{ROOT}.'", value=subject)

    rest = parts[1:]
    for kind, pattern in _PATTERNS.items():
        if len(pattern) != len(rest):
            continue
        names: list[str] = []
        for expected, actual in zip(pattern, rest):
            if expected == "*":
                names.append(actual)
            elif expected != actual:
                break
        else:
            for name in names:
                validate_name(name, kind=f"token in {subject!r}")
            return ParsedSubject(kind, tuple(names))

    raise SubjectError(f"unknown subject {subject!r}: not in the Continuum subject catalog", value=subject)


def node_id_of(subject: str) -> str:
    """Return the node id carried by a telemetry, lifecycle, placement or ping subject."""
    parsed = parse(subject)
    if parsed.kind not in {"telemetry", "node_lifecycle", "placement", "agent_ping"}:
        raise SubjectError(f"subject {subject!r} carries no node id", value=subject)
    return parsed.tokens[0]

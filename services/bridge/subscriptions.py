"""Outbound subscriptions in the `ctm-webhook-subscriptions` key-value bucket, with an in-memory view.

The view is loaded at start and kept current by a watcher on the bucket,
so every bridge process sees subscriptions added through any of them.
Writes through this process update the view at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets as secrets_module
import uuid

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from continuum.shared import subjects
from continuum.shared.errors import SchemaError, SubjectError
from continuum.shared.schemas import decode, encode
from continuum.shared.schemas.hook import SubscriptionView, WebhookSubscription

logger = logging.getLogger(__name__)

BUCKET = "ctm-webhook-subscriptions"

# Subjects the bridge consumes for fan-out; a filter must overlap one of them.
FAN_OUT_SUBJECTS = (subjects.PLACEMENT_FAILED, subjects.ALL_INGEST_STATUS, "ctm.guard.blocked.*", subjects.ALL_HOOKS)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: `*` is one token, a trailing `>` is one or more tokens."""
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for index, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > index
        if index >= len(subject_tokens):
            return False
        if token != "*" and token != subject_tokens[index]:
            return False
    return len(pattern_tokens) == len(subject_tokens)


def filters_overlap(first: str, second: str) -> bool:
    """Return True if some subject matches both wildcard filters."""
    a, b = first.split("."), second.split(".")
    for index in range(max(len(a), len(b))):
        left = a[index] if index < len(a) else None
        right = b[index] if index < len(b) else None
        if left == ">" or right == ">":
            return left is not None and right is not None
        if left is None or right is None:
            return False
        if left != right and "*" not in (left, right):
            return False
    return True


def validate_filter(value: str) -> str:
    """Check a subscription's subject filter, raising SubjectError with the fix."""
    tokens = value.split(".")
    if not value or any(token == "" for token in tokens):
        raise SubjectError(f"invalid subject filter {value!r}: empty token; write tokens separated by single dots", value=value)
    if ">" in tokens[:-1] or any((">" in token or "*" in token) and token not in (">", "*") for token in tokens):
        raise SubjectError(f"invalid subject filter {value!r}: '*' must be a whole token and '>' the last one", value=value)
    if not any(filters_overlap(value, consumed) for consumed in FAN_OUT_SUBJECTS):
        raise SubjectError(
            f"subject filter {value!r} matches no event the bridge delivers; use one under "
            f"{', '.join(FAN_OUT_SUBJECTS)}",
            value=value,
        )
    return value


def new_secret() -> str:
    """Return a Standard Webhooks key: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets_module.token_bytes(32)).decode()


def new_id() -> str:
    return "sub-" + uuid.uuid4().hex[:12]


def view(subscription: WebhookSubscription) -> SubscriptionView:
    return SubscriptionView(
        id=subscription.id,
        subject_filter=subscription.subject_filter,
        url=subscription.url,
        header_names=sorted(subscription.headers),
        description=subscription.description,
        created_at=subscription.created_at,
    )


class SubscriptionStore:
    """Reads and writes subscriptions; `matching(subject)` uses the in-memory view."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._kv: KeyValue | None = None
        self._view: dict[str, WebhookSubscription] = {}
        self._watch_task: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()

    async def start(self) -> None:
        self._kv = await self.js.key_value(BUCKET)
        self._watch_task = asyncio.create_task(self._watch(), name="bridge-subscription-watch")
        await asyncio.wait_for(self._loaded.wait(), 10.0)
        logger.info("loaded %d webhook subscriptions", len(self._view))

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            try:
                await self._watch_task
            except asyncio.CancelledError:
                pass

    async def _watch(self) -> None:
        assert self._kv is not None
        while True:
            try:
                watcher = await self._kv.watchall()
                async for entry in watcher:
                    if entry is None:
                        self._loaded.set()
                        continue
                    self._apply(entry.key, entry.value, entry.operation)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the watcher is restarted; the view keeps its last state
                logger.warning("subscription watcher failed (%s: %s); restarting in 2s", type(exc).__name__, exc)
                await asyncio.sleep(2.0)

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        if operation in (KV_DEL, KV_PURGE) or not value:
            self._view.pop(key, None)
            return
        try:
            self._view[key] = decode(value, WebhookSubscription)
        except SchemaError as exc:
            logger.error("ignoring invalid subscription %s in %s: %s", key, BUCKET, exc)

    def matching(self, subject: str) -> list[WebhookSubscription]:
        return [item for item in self._view.values() if subject_matches(item.subject_filter, subject)]

    def all(self) -> list[WebhookSubscription]:
        return sorted(self._view.values(), key=lambda item: item.created_at)

    async def get(self, subscription_id: str) -> WebhookSubscription | None:
        """Read one subscription from the bucket (not the view), so a removal is seen at once."""
        assert self._kv is not None
        try:
            entry = await self._kv.get(subscription_id)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if not entry.value:
            return None
        return decode(entry.value, WebhookSubscription)

    async def create(self, subscription: WebhookSubscription) -> bool:
        """Store a new subscription; return False when the id is taken."""
        assert self._kv is not None
        try:
            await self._kv.create(subscription.id, encode(subscription))
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        self._view[subscription.id] = subscription
        return True

    async def delete(self, subscription_id: str) -> bool:
        assert self._kv is not None
        if await self.get(subscription_id) is None:
            return False
        await self._kv.delete(subscription_id)
        self._view.pop(subscription_id, None)
        return True

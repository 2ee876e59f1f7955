"""Outbound webhooks: fan-out of platform events into delivery tasks, and the signed HTTP delivery.

Two stages keep each subscription's retries independent:

1. Fan-out consumers on PLACEMENTS (`ctm.placement.failed`), INGEST_STATUS,
   GUARD (`ctm.guard.blocked.*`) and HOOKS publish one `DeliveryTask` per
   matching subscription to `ctm.webhook.delivery.<subscription_id>`, with
   a message id derived from the event and subscription, so a redelivered
   event creates no second task.
2. The `bridge-deliveries` consumer POSTs each task. A failed attempt is
   nak'd with exponential backoff and jitter; the last one is dead-lettered
   to `ctm.dlq.WEBHOOK_DELIVERIES`. Backoff lives in the server (nak with
   delay), so a bridge restart resumes the schedule where it stopped.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

from continuum.services.bridge import attempts
from continuum.services.bridge.errors import TargetError
from continuum.services.bridge.settings import BridgeSettings
from continuum.services.bridge.subscriptions import SubscriptionStore
from continuum.services.bridge.targets import TargetPolicy
from continuum.shared import bus, envelope, subjects
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import PermanentError, PublishError, TransientError
from continuum.shared.schemas.hook import DeliveryAttempt, DeliveryOutcome, DeliveryTask, WebhookSubscription

logger = logging.getLogger(__name__)

DELIVERY_STREAM = "WEBHOOK_DELIVERIES"
USER_AGENT = "Continuum-Webhooks/1"
# Headers a subscription may not set, because the signature and framing depend on them.
_RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"})


def delivery_id_for(event_id: str, subscription_id: str) -> str:
    """Return the Standard Webhooks `webhook-id`, the same for one event and subscription on every attempt."""
    digest = hashlib.sha256(f"{event_id}\n{subscription_id}".encode()).hexdigest()[:32]
    return f"msg_{digest}"


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after_s: float | None = None) -> float:
    """Delay before the attempt after `attempt`: half of `base * 2**(attempt-1)` fixed, half random, capped at `max_s`."""
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return delay


class PolicyResolver(AbstractResolver):
    """A resolver that drops rejected addresses, so a DNS answer that changed after the check cannot reach them."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        allowed = []
        for result in results:
            try:
                self.policy.check_address(ipaddress.ip_address(result["host"]), f"http://{host}")
            except TargetError:
                continue
            allowed.append(result)
        if not allowed:
            raise OSError(f"every address of {host} is private, loopback or link-local and not allowed")
        return allowed

    async def close(self) -> None:
        await self._resolver.close()


def _event_id(event: CloudEvent[Any], msg: Msg, stream: str) -> str:
    headers = msg.headers or {}
    return headers.get("ce-id") or headers.get(envelope.MSG_ID_HEADER) or f"{stream}-{msg.metadata.sequence.stream}"


class FanOut:
    """Handler of the fan-out consumers: one delivery task per matching subscription."""

    def __init__(self, js: JetStreamContext, store: SubscriptionStore, *, source: str, stream: str) -> None:
        self.js = js
        self.store = store
        self.source = source
        self.stream = stream

    async def __call__(self, event: CloudEvent[msgspec.Raw], msg: Msg) -> None:
        matches = self.store.matching(msg.subject)
        if not matches:
            return
        try:
            # msgspec.Raw accepts any bytes; a body that is not JSON would corrupt every task it is copied into.
            msgspec.json.decode(event.data)
        except msgspec.DecodeError as exc:
            raise PermanentError(f"event on {msg.subject} is not JSON and cannot be delivered as a webhook: {exc}") from exc
        event_id = _event_id(event, msg, self.stream)
        for subscription in matches:
            task = DeliveryTask(
                delivery_id=delivery_id_for(event_id, subscription.id),
                subscription_id=subscription.id,
                event_id=event_id,
                event_type=event.type,
                event_subject=msg.subject,
                event_time=event.time,
                data=event.data,
            )
            try:
                await bus.publish(
                    self.js,
                    subjects.webhook_delivery(subscription.id),
                    task,
                    source=self.source,
                    event_id=task.delivery_id,
                    expected_stream=DELIVERY_STREAM,
                )
            except PublishError as exc:
                raise TransientError(f"delivery task for {subscription.id} not stored: {exc}") from exc
            logger.debug("delivery queued", extra={"delivery_id": task.delivery_id, "subscription_id": subscription.id})


class Deliverer:
    """Handler of the `bridge-deliveries` consumer: one signed POST per delivery, with retry decisions."""

    def __init__(
        self,
        js: JetStreamContext,
        store: SubscriptionStore,
        policy: TargetPolicy,
        settings: BridgeSettings,
        *,
        source: str,
    ) -> None:
        self.js = js
        self.store = store
        self.policy = policy
        self.settings = settings
        self.source = source
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=PolicyResolver(self.policy), limit=self.settings.delivery_concurrency)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.settings.delivery_timeout_s),
            headers={"User-Agent": USER_AGENT},
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, event: CloudEvent[DeliveryTask], msg: Msg) -> None:
        task = event.data
        attempt = msg.metadata.num_delivered
        subscription = await self.store.get(task.subscription_id)
        if subscription is None:
            logger.info("subscription removed; dropping delivery", extra={"delivery_id": task.delivery_id, "subscription_id": task.subscription_id})
            await self._record(task, attempt, "dropped", error="subscription removed")
            return
        if attempt > self.settings.max_attempts:
            # Only reached when dead-lettering failed before: do not POST again.
            raise PermanentError(f"delivery {task.delivery_id} used all {self.settings.max_attempts} attempts")

        status, latency_ms, error, retry_after = await self._post(task, subscription)
        if 200 <= status < 300:
            await self._record(task, attempt, "delivered", status=status, latency_ms=latency_ms)
            return

        if attempt >= self.settings.max_attempts:
            await self._record(task, attempt, "dead_lettered", status=status, latency_ms=latency_ms, error=error)
            raise PermanentError(
                f"delivery {task.delivery_id} to {subscription.url} failed {attempt} times, last: {error}"
            )
        delay = backoff_delay(attempt, self.settings.retry_base_s, self.settings.retry_max_s, retry_after)
        await self._record(task, attempt, "retrying", status=status, latency_ms=latency_ms, error=error, next_in=delay)
        raise TransientError(f"delivery attempt {attempt} to {subscription.url} failed: {error}", delay=delay)

    def _body(self, task: DeliveryTask) -> bytes:
        # Standard Webhooks payload shape: type, timestamp and data, plus the Continuum event id and subject.
        return msgspec.json.encode(
            {
                "type": task.event_type,
                "timestamp": task.event_time.isoformat(),
                "id": task.event_id,
                "subject": task.event_subject,
                "data": task.data,
            }
        )

    def _headers(self, task: DeliveryTask, subscription: WebhookSubscription, body: bytes) -> dict[str, str]:
        now = datetime.now(UTC)
        signature = Webhook(subscription.secret).sign(task.delivery_id, now, body)
        headers = {key: value for key, value in subscription.headers.items() if key.lower() not in _RESERVED_HEADERS}
        headers.update(
            {
                "Content-Type": "application/json",
                "webhook-id": task.delivery_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signature,
            }
        )
        return headers

    async def _post(self, task: DeliveryTask, subscription: WebhookSubscription) -> tuple[int, float, str, float | None]:
        """POST the task; return (status, latency in ms, error text, Retry-After seconds). Status 0: no response."""
        assert self._session is not None
        try:
            await self.policy.check(subscription.url)
        except TargetError as exc:
            return 0, 0.0, str(exc), None

        body = self._body(task)
        started = time.perf_counter()
        try:
            async with self._session.post(
                subscription.url, data=body, headers=self._headers(task, subscription, body), allow_redirects=False
            ) as response:
                await response.read()
                latency_ms = (time.perf_counter() - started) * 1000
                error = "" if 200 <= response.status < 300 else f"HTTP {response.status} {response.reason or ''}".strip()
                return response.status, latency_ms, error, _retry_after(response.headers.get("Retry-After"))
        except TimeoutError:
            return 0, (time.perf_counter() - started) * 1000, f"timed out after {self.settings.delivery_timeout_s}s", None
        except aiohttp.ClientError as exc:
            return 0, (time.perf_counter() - started) * 1000, f"{type(exc).__name__}: {exc}", None

    async def _record(
        self,
        task: DeliveryTask,
        attempt: int,
        outcome: DeliveryOutcome,
        *,
        status: int = 0,
        latency_ms: float = 0.0,
        error: str = "",
        next_in: float | None = None,
    ) -> None:
        log = logger.info if outcome in ("delivered", "dropped") else logger.warning
        log(
            "delivery attempt %d %s%s",
            attempt,
            outcome,
            f": {error}" if error else "",
            extra={"delivery_id": task.delivery_id, "subscription_id": task.subscription_id, "status": status},
        )
        await attempts.record(
            self.js,
            DeliveryAttempt(
                delivery_id=task.delivery_id,
                subscription_id=task.subscription_id,
                event_id=task.event_id,
                event_subject=task.event_subject,
                attempt=attempt,
                outcome=outcome,
                status_code=status,
                latency_ms=round(latency_ms, 2),
                error=error,
                next_attempt_in_s=round(next_in, 3) if next_in is not None else None,
            ),
            source=self.source,
        )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

"""Attempt records on `ctm.webhook.attempt.<subscription_id>` (stream WEBHOOK_ATTEMPTS) and queries over them."""

from __future__ import annotations

import collections
import logging

import nats.errors
from nats.js import JetStreamContext
from nats.js import api as js_api

from continuum.shared import bus, subjects
from continuum.shared.errors import PublishError, SchemaError
from continuum.shared.schemas import decode
from continuum.shared.schemas.hook import DeliveryAttempt

logger = logging.getLogger(__name__)

STREAM = "WEBHOOK_ATTEMPTS"

# A query reads at most this many of the newest records (per filter) to find its matches.
SCAN_WINDOW = 20_000
_BATCH = 500


async def record(js: JetStreamContext, attempt: DeliveryAttempt, *, source: str) -> None:
    """Publish one attempt record; a failure is logged, because the delivery itself already happened."""
    try:
        await bus.publish(
            js,
            subjects.webhook_attempt(attempt.subscription_id),
            attempt,
            source=source,
            event_id=f"{attempt.delivery_id}-{attempt.attempt}",
            expected_stream=STREAM,
        )
    except PublishError as exc:
        logger.warning(
            "attempt record not stored: %s",
            exc,
            extra={"delivery_id": attempt.delivery_id, "subscription_id": attempt.subscription_id, "attempt": attempt.attempt},
        )


async def query(
    js: JetStreamContext, *, subscription_id: str | None, delivery_id: str | None, limit: int
) -> list[DeliveryAttempt]:
    """Return up to `limit` newest attempts, oldest first, filtered by subscription and delivery id."""
    subject = subjects.webhook_attempt(subscription_id) if subscription_id else subjects.ALL_WEBHOOK_ATTEMPTS
    info = await js.stream_info(STREAM)
    if info.state.messages == 0:
        return []
    start = max(info.state.first_seq, info.state.last_seq - SCAN_WINDOW + 1)
    config = js_api.ConsumerConfig(
        deliver_policy=js_api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=start,
        ack_policy=js_api.AckPolicy.NONE,
        filter_subject=subject,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    subscription = await js.pull_subscribe(subject, stream=STREAM, config=config)
    newest: collections.deque[DeliveryAttempt] = collections.deque(maxlen=limit)
    try:
        while True:
            try:
                messages = await subscription.fetch(_BATCH, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            for msg in messages:
                try:
                    attempt = decode(msg.data, DeliveryAttempt)
                except SchemaError as exc:
                    logger.warning("skipping an unreadable attempt record at sequence %d: %s", msg.metadata.sequence.stream, exc)
                    continue
                if delivery_id is None or attempt.delivery_id == delivery_id:
                    newest.append(attempt)
            if messages and messages[-1].metadata.num_pending == 0:
                break
    finally:
        await subscription.unsubscribe()
    return list(newest)

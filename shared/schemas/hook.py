"""Verified inbound webhooks on `ctm.hook.<source>.<event>`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from continuum.shared.schemas._base import Document, Event, utcnow


class WebhookEvent(Event, kw_only=True):
    """A webhook whose signature the bridge verified.

    `headers` keeps only the sender's event metadata; signatures and
    authorization headers are dropped before publishing.
    """

    CE_TYPE = "continuum.hook.v1"

    source: str
    event: str
    delivery_id: str
    body: Any
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    received_at: datetime = msgspec.field(default_factory=utcnow)


# Outbound webhooks ---------------------------------------------------------


class WebhookSubscription(Document, kw_only=True):
    """An outbound webhook: events whose subject matches `subject_filter` are POSTed to `url`.

    `secret` is a Standard Webhooks key (`whsec_` + base64). It is stored in
    the subscriptions bucket and never returned by list or get.
    """

    CE_TYPE = "continuum.webhook.subscription.v1"

    id: str
    subject_filter: str
    url: str
    secret: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""
    created_at: datetime = msgspec.field(default_factory=utcnow)


class SubscriptionCreate(Document, kw_only=True):
    """Request to add a subscription; the bridge generates `id` and `secret` when they are empty."""

    CE_TYPE = "continuum.webhook.subscription.create.v1"

    subject_filter: str
    url: str
    id: str = ""
    secret: str = ""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    description: str = ""


class SubscriptionView(Event, kw_only=True):
    """A subscription as the API shows it: the secret is left out, header values are masked."""

    CE_TYPE = "continuum.webhook.subscription.view.v1"

    id: str
    subject_filter: str
    url: str
    header_names: list[str] = msgspec.field(default_factory=list)
    description: str = ""
    created_at: datetime


class SubscriptionCreated(Event, kw_only=True):
    """Reply to an add: the subscription and its secret, which is returned only this once."""

    CE_TYPE = "continuum.webhook.subscription.created.v1"

    subscription: SubscriptionView
    secret: str


class SubscriptionList(Event, kw_only=True):
    CE_TYPE = "continuum.webhook.subscription.list.v1"

    subscriptions: list[SubscriptionView] = msgspec.field(default_factory=list)


class DeliveryTask(Event, kw_only=True):
    """One event to deliver to one subscription, on `ctm.webhook.delivery.<subscription_id>`.

    `data` is the original event body as JSON, `delivery_id` is the
    Standard Webhooks `webhook-id` that stays the same on every attempt.
    """

    CE_TYPE = "continuum.webhook.delivery.v1"

    delivery_id: str
    subscription_id: str
    event_id: str
    event_type: str
    event_subject: str
    event_time: datetime
    data: msgspec.Raw


DeliveryOutcome = Literal["delivered", "retrying", "dead_lettered", "dropped"]


class DeliveryAttempt(Event, kw_only=True):
    """One HTTP attempt of a delivery, on `ctm.webhook.attempt.<subscription_id>`.

    `status_code` is 0 when no response arrived (timeout, refused
    connection, rejected target); `error` then says why.
    """

    CE_TYPE = "continuum.webhook.attempt.v1"

    delivery_id: str
    subscription_id: str
    event_id: str
    event_subject: str
    attempt: int
    outcome: DeliveryOutcome
    status_code: int = 0
    latency_ms: float = 0.0
    error: str = ""
    next_attempt_in_s: float | None = None
    at: datetime = msgspec.field(default_factory=utcnow)


class DeliveriesRequest(Event, kw_only=True):
    """Request for the latest attempts, optionally of one subscription or one delivery."""

    CE_TYPE = "continuum.webhook.deliveries.request.v1"

    subscription_id: str | None = None
    delivery_id: str | None = None
    limit: int = 50


class DeliveriesReply(Event, kw_only=True):
    CE_TYPE = "continuum.webhook.deliveries.reply.v1"

    attempts: list[DeliveryAttempt] = msgspec.field(default_factory=list)

"""The `webhooks` management endpoints, a NATS micro service named `bridge`.

    ctm.api.webhooks_add         SubscriptionCreate -> SubscriptionCreated
    ctm.api.webhooks_list        EmptyRequest       -> SubscriptionList
    ctm.api.webhooks_remove      NameRequest        -> OkReply
    ctm.api.webhooks_deliveries  DeliveriesRequest  -> DeliveriesReply
"""

from __future__ import annotations

import logging

from continuum.services.bridge import attempts
from continuum.services.bridge.errors import TargetError
from continuum.services.bridge.subscriptions import SubscriptionStore, new_id, new_secret, validate_filter, view
from continuum.services.bridge.targets import TargetPolicy
from continuum.shared import subjects
from continuum.shared.errors import SubjectError
from continuum.shared.rpc import ApiFailure, Endpoint
from continuum.shared.schemas import EmptyRequest, NameRequest, OkReply
from continuum.shared.schemas.hook import (
    DeliveriesReply,
    DeliveriesRequest,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    WebhookSubscription,
)
from nats.js import JetStreamContext
from standardwebhooks.webhooks import Webhook

logger = logging.getLogger(__name__)

ADD = subjects.api("webhooks_add")
LIST = subjects.api("webhooks_list")
REMOVE = subjects.api("webhooks_remove")
DELIVERIES = subjects.api("webhooks_deliveries")

MAX_DELIVERIES_LIMIT = 1000


class WebhooksApi:
    def __init__(self, js: JetStreamContext, store: SubscriptionStore, policy: TargetPolicy) -> None:
        self.js = js
        self.store = store
        self.policy = policy

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("webhooks_add", ADD, SubscriptionCreate, self._handle_add, "Add an outbound webhook subscription."),
            Endpoint("webhooks_list", LIST, EmptyRequest, self._handle_list, "List outbound webhook subscriptions."),
            Endpoint("webhooks_remove", REMOVE, NameRequest, self._handle_remove, "Remove a subscription by id."),
            Endpoint("webhooks_deliveries", DELIVERIES, DeliveriesRequest, self._handle_deliveries, "Recent delivery attempts."),
        ]

    async def _handle_add(self, request: SubscriptionCreate) -> SubscriptionCreated:
        subscription_id = request.id or new_id()
        try:
            subjects.validate_name(subscription_id, kind="subscription id")
            validate_filter(request.subject_filter)
        except SubjectError as exc:
            raise ApiFailure("bad_request", str(exc), field="id" if request.id and exc.value == request.id else "subject_filter") from exc
        try:
            await self.policy.check(request.url)
        except TargetError as exc:
            raise ApiFailure("bad_request", str(exc), field="url") from exc
        secret = request.secret or new_secret()
        try:
            Webhook(secret)
        except Exception as exc:  # noqa: BLE001 - the library raises several error types for a bad key
            raise ApiFailure("bad_request", "invalid secret: expected 'whsec_' followed by base64", field="secret") from exc

        subscription = WebhookSubscription(
            id=subscription_id,
            subject_filter=request.subject_filter,
            url=request.url,
            secret=secret,
            headers=request.headers,
            description=request.description,
        )
        if not await self.store.create(subscription):
            raise ApiFailure("conflict", f"subscription {subscription_id!r} already exists; remove it first or pick another id", field="id")
        logger.info("subscription added", extra={"subscription_id": subscription_id, "subject_filter": request.subject_filter})
        return SubscriptionCreated(subscription=view(subscription), secret=secret)

    async def _handle_list(self, request: EmptyRequest) -> SubscriptionList:
        return SubscriptionList(subscriptions=[view(item) for item in self.store.all()])

    async def _handle_remove(self, request: NameRequest) -> OkReply:
        if not await self.store.delete(request.name):
            raise ApiFailure("not_found", f"subscription {request.name!r} not found; see `continuum webhooks list`", field="name")
        logger.info("subscription removed", extra={"subscription_id": request.name})
        return OkReply(message=f"removed subscription {request.name}")

    async def _handle_deliveries(self, request: DeliveriesRequest) -> DeliveriesReply:
        if not 1 <= request.limit <= MAX_DELIVERIES_LIMIT:
            raise ApiFailure("bad_request", f"invalid limit {request.limit}: expected 1-{MAX_DELIVERIES_LIMIT}", field="limit")
        if request.subscription_id:
            try:
                subjects.validate_name(request.subscription_id, kind="subscription id")
            except SubjectError as exc:
                raise ApiFailure("bad_request", str(exc), field="subscription_id") from exc
        found = await attempts.query(
            self.js, subscription_id=request.subscription_id, delivery_id=request.delivery_id, limit=request.limit
        )
        return DeliveriesReply(attempts=found)

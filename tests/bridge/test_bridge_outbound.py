"""Outbound webhooks: fan-out, signed delivery, retries, dead letters and restarts, with a receiver on loopback."""

from __future__ import annotations

import asyncio
import json

import pytest
from standardwebhooks.webhooks import Webhook

from bridge_support import STANDARD_SECRET, bridge_settings, start_bridge
from continuum.shared import bus, rpc, subjects
from continuum.shared.envelope import from_nats
from continuum.shared.schemas import DeadLetter, EmptyRequest, NameRequest, OkReply, to_builtins
from continuum.shared.schemas.hook import (
    DeliveriesReply,
    DeliveriesRequest,
    SubscriptionCreate,
    SubscriptionCreated,
    SubscriptionList,
    WebhookEvent,
)
from continuum.shared.schemas.workload import PlacementFailed


async def add_subscription(nc, url: str, subject_filter: str, **fields) -> SubscriptionCreated:
    request = SubscriptionCreate(subject_filter=subject_filter, url=url, **fields)
    return await rpc.call(nc, subjects.api("webhooks_add"), request, SubscriptionCreated)


async def publish_hook(js, source: str, delivery: str) -> None:
    event = WebhookEvent(source=source, event="push", delivery_id=delivery, body={"n": delivery})
    await bus.publish(js, subjects.hook(source, "push"), event, source="tests", event_id=f"{source}:{delivery}")


async def wait_for(condition, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met before the timeout")


async def attempts_of(nc, subscription_id: str) -> DeliveriesReply:
    request = DeliveriesRequest(subscription_id=subscription_id)
    return await rpc.call(nc, subjects.api("webhooks_deliveries"), request, DeliveriesReply)


@pytest.fixture
async def outbound(fresh_server, unique):
    running = await start_bridge(fresh_server.url, bridge_settings(unique))
    yield running
    await running.stop()


@pytest.mark.timeout(30)
async def test_delivery_signed_and_verifiable(outbound, receiver, unique):
    created = await add_subscription(
        outbound.nc, receiver.url, "ctm.placement.failed", secret=STANDARD_SECRET, headers={"X-Team": "ops"}
    )
    failed = PlacementFailed(workload="llm", message="0/3 nodes fit: 3 no GPU", total_nodes=3, reasons={"no GPU": 3})

    await bus.publish(outbound.js, subjects.PLACEMENT_FAILED, failed, source="tests", event_id="pf-1")
    await wait_for(lambda: len(receiver.requests) == 1)

    headers, body = receiver.requests[0]
    payload = Webhook(created.secret).verify(body, headers)
    assert payload["type"] == "continuum.placement.failed.v1"
    assert payload["id"] == "pf-1"
    assert payload["subject"] == "ctm.placement.failed"
    assert payload["data"]["workload"] == "llm"
    assert payload["data"]["reasons"] == {"no GPU": 3}
    assert headers["X-Team"] == "ops"
    assert created.secret == STANDARD_SECRET


@pytest.mark.timeout(30)
async def test_delivery_with_other_secret_fails_verification(outbound, receiver, unique):
    await add_subscription(outbound.nc, receiver.url, f"ctm.hook.src{unique}.*")

    await publish_hook(outbound.js, f"src{unique}", "a1")
    await wait_for(lambda: len(receiver.requests) == 1)

    headers, body = receiver.requests[0]
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(STANDARD_SECRET).verify(body, headers)


@pytest.mark.timeout(30)
async def test_fail_twice_delivered_on_third(outbound, receiver, unique):
    receiver.statuses = [500, 502]
    created = await add_subscription(outbound.nc, receiver.url, f"ctm.hook.src{unique}.push")

    await publish_hook(outbound.js, f"src{unique}", "retry-me")
    await wait_for(lambda: len(receiver.accepted) == 1)

    ids = {headers["webhook-id"] for headers, _ in receiver.requests}
    assert len(receiver.requests) == 3
    assert len(ids) == 1
    for headers, body in receiver.requests:
        Webhook(created.secret).verify(body, headers)
    reply = await attempts_of(outbound.nc, created.subscription.id)
    assert [(item.attempt, item.outcome, item.status_code) for item in reply.attempts] == [
        (1, "retrying", 500),
        (2, "retrying", 502),
        (3, "delivered", 200),
    ]
    assert reply.attempts[0].next_attempt_in_s is not None
    assert reply.attempts[0].error == "HTTP 500 Internal Server Error"


@pytest.mark.timeout(30)
async def test_always_failing_ends_in_dlq(outbound, receiver, unique):
    receiver.always_fail = True
    created = await add_subscription(outbound.nc, receiver.url, f"ctm.hook.src{unique}.*")
    dead_letters = await outbound.nc.subscribe(subjects.dlq("WEBHOOK_DELIVERIES"))

    await publish_hook(outbound.js, f"src{unique}", "doomed")
    message = await dead_letters.next_msg(timeout=15.0)

    letter = from_nats(message.data, message.headers, DeadLetter).data
    assert letter.stream == "WEBHOOK_DELIVERIES"
    assert "failed 3 times" in letter.error
    assert json.loads(letter.payload)["subscription_id"] == created.subscription.id
    assert len(receiver.requests) == 3
    reply = await attempts_of(outbound.nc, created.subscription.id)
    assert [item.outcome for item in reply.attempts] == ["retrying", "retrying", "dead_lettered"]
    info = await outbound.js.stream_info("WEBHOOK_DELIVERIES")
    assert info.state.messages == 0


@pytest.mark.timeout(60)
async def test_restart_mid_retry_delivers_once(fresh_server, receiver, unique):
    settings = bridge_settings(unique, retry_base_s=3.0, retry_max_s=3.0)
    first = await start_bridge(fresh_server.url, settings)
    receiver.statuses = [500]
    created = await add_subscription(first.nc, receiver.url, f"ctm.hook.src{unique}.*")

    await publish_hook(first.js, f"src{unique}", "survivor")
    await wait_for(lambda: len(receiver.requests) == 1)
    await first.stop()
    second = await start_bridge(fresh_server.url, settings)
    try:
        await wait_for(lambda: len(receiver.accepted) == 1, timeout=20.0)
        # Give a duplicate the time of one more backoff to show up.
        await asyncio.sleep(2.0)
        reply = await attempts_of(second.nc, created.subscription.id)
    finally:
        await second.stop()

    assert len(receiver.accepted) == 1
    assert len(receiver.requests) == 2
    assert [item.outcome for item in reply.attempts] == ["retrying", "delivered"]


@pytest.mark.timeout(30)
async def test_event_redelivered_to_fan_out_queued_once(outbound, receiver, unique):
    await add_subscription(outbound.nc, receiver.url, f"ctm.hook.src{unique}.*")

    await publish_hook(outbound.js, f"src{unique}", "once")
    await wait_for(lambda: len(receiver.accepted) == 1)
    # The same event published again (a producer retry with the same id) is de-duplicated before fan-out.
    await publish_hook(outbound.js, f"src{unique}", "once")
    await asyncio.sleep(1.0)

    assert len(receiver.requests) == 1


@pytest.mark.timeout(30)
async def test_private_target_rejected_by_default(fresh_server, unique):
    running = await start_bridge(fresh_server.url, bridge_settings(unique, allowed_target_networks=[]))
    try:
        failures = {}
        for url in ("http://127.0.0.1:9/hook", "http://169.254.10.10/latest", "http://10.1.2.3/x", "http://[::1]/x"):
            with pytest.raises(rpc.ApiCallError) as caught:
                await add_subscription(running.nc, url, "ctm.placement.failed")
            failures[url] = caught.value.error
    finally:
        await running.stop()

    for url, error in failures.items():
        assert error.code == "bad_request", url
        assert error.field == "url", url
        assert "allowed_target_networks" in error.message, url


@pytest.mark.timeout(30)
async def test_invalid_subscription_rejected(outbound, receiver):
    cases = {
        "ctm.telemetry.*": "subject_filter",
        "ctm.hook.*x.push": "subject_filter",
        "": "subject_filter",
    }
    for subject_filter, field in cases.items():
        with pytest.raises(rpc.ApiCallError) as caught:
            await add_subscription(outbound.nc, receiver.url, subject_filter)
        assert caught.value.error.field == field, subject_filter

    with pytest.raises(rpc.ApiCallError) as bad_url:
        await add_subscription(outbound.nc, "ftp://127.0.0.1/x", "ctm.placement.failed")
    assert bad_url.value.error.field == "url"
    with pytest.raises(rpc.ApiCallError) as bad_secret:
        await add_subscription(outbound.nc, receiver.url, "ctm.placement.failed", secret="plain")
    assert bad_secret.value.error.field == "secret"


@pytest.mark.timeout(30)
async def test_subscription_list_and_remove(outbound, receiver, unique):
    created = await add_subscription(outbound.nc, receiver.url, "ctm.ingest.*.status", id=f"s-{unique}", headers={"Authorization": "Bearer x"})

    listed = await rpc.call(outbound.nc, subjects.api("webhooks_list"), EmptyRequest(), SubscriptionList)
    with pytest.raises(rpc.ApiCallError) as duplicate:
        await add_subscription(outbound.nc, receiver.url, "ctm.ingest.*.status", id=f"s-{unique}")
    removed = await rpc.call(outbound.nc, subjects.api("webhooks_remove"), NameRequest(name=f"s-{unique}"), OkReply)
    with pytest.raises(rpc.ApiCallError) as missing:
        await rpc.call(outbound.nc, subjects.api("webhooks_remove"), NameRequest(name=f"s-{unique}"), OkReply)
    after = await rpc.call(outbound.nc, subjects.api("webhooks_list"), EmptyRequest(), SubscriptionList)

    assert created.secret.startswith("whsec_")
    assert [item.id for item in listed.subscriptions] == [f"s-{unique}"]
    assert listed.subscriptions[0].header_names == ["Authorization"]
    assert "secret" not in json.dumps(to_builtins(listed))
    assert duplicate.value.error.code == "conflict"
    assert removed.ok is True
    assert missing.value.error.code == "not_found"
    assert after.subscriptions == []

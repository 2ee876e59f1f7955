"""Reading this node's placement events: the replay at start and the durable consumer.

The PLACEMENTS stream is the source of truth. At start the agent reads
every event on `ctm.placement.<node_id>` with a short-lived consumer named
`agent-<node_id>-replay` and deletes it after use. Besides its durable, this
is the only consumer the deployment's permissions let an agent create. It
keeps the newest (epoch, generation) per replica id, which is the desired
state for this node. Then the durable consumer `agent-<node_id>` delivers
what arrives later, and what arrived while the agent was offline; events not
newer than the applied version of their replica are ignored, so replaying
an event never starts a second replica.
"""

from __future__ import annotations

import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from continuum.shared import subjects
from continuum.shared.errors import SchemaError
from continuum.shared.schemas import convert, decode
from continuum.shared.schemas.workload import Placement
from continuum.shared.topology import ConsumerSpec

logger = logging.getLogger(__name__)

STREAM = "PLACEMENTS"
REPLAY_BATCH = 256


def durable_spec(node_id: str) -> ConsumerSpec:
    """The durable pull consumer of one node's placements."""
    return ConsumerSpec(
        STREAM,
        f"agent-{node_id}",
        f"Placements for node {node_id}, consumed by its agent.",
        filter_subjects=(subjects.placement(node_id),),
        deliver_policy="all",
        ack_wait=30.0,
        max_deliver=5,
        backoff=(1.0, 5.0, 15.0, 30.0),
    )


def parse_placement(payload: Any) -> Placement:
    """Validate a decoded JSON object as a Placement; raises SchemaError naming the field."""
    return convert(payload, Placement)


def replica_identity(payload: Any) -> tuple[str, str] | None:
    """Return (workload, replica_id) from an invalid payload when both are usable names, else None."""
    if not isinstance(payload, dict):
        return None
    workload, replica_id = payload.get("workload"), payload.get("replica_id")
    if not isinstance(workload, str) or not isinstance(replica_id, str):
        return None
    try:
        subjects.validate_name(workload, kind="workload name")
    except ValueError:
        return None
    return workload, replica_id


async def read_desired_state(js: JetStreamContext, node_id: str) -> dict[str, Placement]:
    """Return the newest valid placement per replica id among all stored events for `node_id`."""
    subject = subjects.placement(node_id)
    name = replay_consumer_name(node_id)
    # A consumer left by a crashed start has already read part of the history, so start afresh.
    await _delete_replay_consumer(js, name)
    config = js_api.ConsumerConfig(
        name=name,
        filter_subject=subject,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.NONE,
        inactive_threshold=30.0,
    )
    await js.add_consumer(STREAM, config)
    newest: dict[str, Placement] = {}
    subscription = await js.pull_subscribe_bind(durable=name, stream=STREAM)
    try:
        remaining = (await subscription.consumer_info()).num_pending
        while remaining > 0:
            messages = await subscription.fetch(min(remaining, REPLAY_BATCH), timeout=5.0)
            for msg in messages:
                _keep_newest(newest, msg.data, msg.metadata.sequence.stream)
            remaining = messages[-1].metadata.num_pending
    finally:
        await subscription.unsubscribe()
        # Without the delete, the server removes it after `inactive_threshold`.
        await _delete_replay_consumer(js, name)
    logger.info("read the desired state of node %s: %d replicas", node_id, len(newest))
    return newest


def replay_consumer_name(node_id: str) -> str:
    return f"agent-{node_id}-replay"


async def _delete_replay_consumer(js: JetStreamContext, name: str) -> None:
    try:
        await js.delete_consumer(STREAM, name)
    except NotFoundError:
        return
    except Exception as exc:  # noqa: BLE001 - an undeleted consumer expires by itself
        logger.warning(
            "failed to delete the replay consumer %s (%s: %s); the server removes it after 30s idle", name, type(exc).__name__, exc
        )


def _keep_newest(newest: dict[str, Placement], data: bytes, sequence: int) -> None:
    try:
        placement = decode(data, Placement)
    except SchemaError as exc:
        logger.warning("skipping invalid placement at stream sequence %d during replay: %s", sequence, exc)
        return
    current = newest.get(placement.replica_id)
    if current is None or (placement.epoch, placement.generation) > (current.epoch, current.generation):
        newest[placement.replica_id] = placement

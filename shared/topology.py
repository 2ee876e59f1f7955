"""Streams, durable consumers, key-value buckets and object stores, declared in code.

`provision()` applies the declarations idempotently: it creates what is
missing, updates what differs from the declaration, and leaves the rest
alone. Replica counts, the maximum message size and the default duplicate
window come from `JetStreamSettings`.

Core request/reply subjects (`ctm.fn.*`, `ctm.embed`, `ctm.api.*`,
`ctm.vector.*`, `ctm.guard.check`, `ctm.rag.*`, `ctm.agent.*.ping`) belong to no
stream on purpose: a stream that captured them would reply to requests with
a PubAck.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BucketNotFoundError, NotFoundError

from continuum.shared import subjects
from continuum.shared.config import JetStreamSettings
from continuum.shared.errors import BusError

logger = logging.getLogger(__name__)

MINUTE = 60.0
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class StreamSpec:
    """A stream and its limits; `max_age` and `duplicate_window` are in seconds (None: the settings' default)."""

    name: str
    subjects: tuple[str, ...]
    description: str
    retention: Literal["limits", "workqueue", "interest"] = "limits"
    max_age: float = 7 * DAY
    max_msgs: int = -1
    max_bytes: int | None = None
    max_msgs_per_subject: int = -1
    duplicate_window: float | None = None
    allow_msg_ttl: bool = False


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer with explicit ack; `backoff` lists redelivery delays in seconds."""

    stream: str
    durable: str
    description: str
    filter_subjects: tuple[str, ...] = ()
    deliver_policy: Literal["all", "new", "last_per_subject"] = "all"
    ack_wait: float = 30.0
    max_deliver: int = 5
    backoff: tuple[float, ...] = (1.0, 5.0, 15.0, 30.0)
    max_ack_pending: int = 1000


@dataclass(frozen=True)
class BucketSpec:
    """A key-value bucket (`kind="kv"`) or an object store (`kind="object"`); `ttl` in seconds, 0 for none."""

    name: str
    description: str
    kind: Literal["kv", "object"] = "kv"
    history: int = 1
    ttl: float = 0.0
    max_value_size: int = -1


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        "TELEMETRY",
        (subjects.ALL_TELEMETRY,),
        "Node telemetry from edge agents; only recent reports matter.",
        max_age=HOUR,
        max_msgs_per_subject=16,
    ),
    StreamSpec("NODES", (subjects.ALL_LIFECYCLE,), "Agent hello, drain and bye events.", max_msgs_per_subject=256),
    StreamSpec(
        "PLACEMENTS",
        (subjects.ALL_PLACEMENTS,),
        "Start and stop events per node, and unschedulable workloads on ctm.placement.failed.",
    ),
    StreamSpec(
        "WORKLOAD_STATUS",
        (subjects.ALL_WORKLOAD_STATUS,),
        "Replica state changes reported by agents.",
        max_age=DAY,
    ),
    StreamSpec("INGEST", (subjects.INGEST,), "Ingest requests, each taken by one data prep process.", retention="workqueue"),
    StreamSpec("INGEST_STATUS", (subjects.ALL_INGEST_STATUS,), "Ingest job progress and completion.", max_age=DAY),
    StreamSpec("CHUNKS", (subjects.ALL_CHUNKS,), "Chunk batches with vectors for the vector DB."),
    StreamSpec(
        "GUARD",
        ("ctm.guard.in.*", "ctm.guard.out.*", "ctm.guard.blocked.*", "ctm.guard.audit.*"),
        "Guarded pipelines: input, allowed or redacted output, blocked messages and audit events.",
    ),
    StreamSpec(
        "HOOKS",
        (subjects.ALL_HOOKS,),
        "Verified inbound webhooks; the long duplicate window absorbs sender retries.",
        duplicate_window=HOUR,
    ),
    StreamSpec(
        "WEBHOOK_DELIVERIES",
        (subjects.ALL_WEBHOOK_DELIVERIES,),
        "Outbound webhook deliveries, one per event and subscription, removed once delivered or dead-lettered.",
        retention="workqueue",
        duplicate_window=HOUR,
    ),
    StreamSpec(
        "WEBHOOK_ATTEMPTS",
        (subjects.ALL_WEBHOOK_ATTEMPTS,),
        "Every outbound webhook attempt with its status, latency and error.",
        max_msgs_per_subject=10_000,
    ),
    StreamSpec("DLQ", (subjects.ALL_DLQ,), "Messages that could not be processed, with the error.", max_age=14 * DAY),
)

CONSUMERS: tuple[ConsumerSpec, ...] = (
    ConsumerSpec("INGEST", "dataprep", "Data prep processes share this consumer to split ingest jobs.", ack_wait=300.0),
    ConsumerSpec("CHUNKS", "vectordb", "Vector DB writers upsert chunk batches.", ack_wait=60.0),
    ConsumerSpec(
        "GUARD",
        "guardrails",
        "Guardrails processes share this consumer for stream mode.",
        filter_subjects=("ctm.guard.in.*",),
    ),
    # The bridge fans platform events out to webhook subscriptions; each
    # consumer starts at new events so a fresh install sends no history.
    ConsumerSpec(
        "PLACEMENTS",
        "bridge-placements",
        "The webhook bridge fans out unschedulable workloads.",
        filter_subjects=(subjects.PLACEMENT_FAILED,),
        deliver_policy="new",
    ),
    ConsumerSpec(
        "INGEST_STATUS", "bridge-ingest-status", "The webhook bridge fans out ingest progress.", deliver_policy="new"
    ),
    ConsumerSpec(
        "GUARD",
        "bridge-guard-blocked",
        "The webhook bridge fans out blocked guarded messages.",
        filter_subjects=("ctm.guard.blocked.*",),
        deliver_policy="new",
    ),
    ConsumerSpec("HOOKS", "bridge-hooks", "The webhook bridge fans out verified inbound webhooks.", deliver_policy="new"),
    # Retries are driven by the bridge (exponential backoff with jitter, up
    # to its `max_attempts` setting); max_deliver is only a ceiling above it.
    ConsumerSpec(
        "WEBHOOK_DELIVERIES",
        "bridge-deliveries",
        "The webhook bridge POSTs each delivery to its subscriber.",
        ack_wait=60.0,
        max_deliver=50,
        backoff=(),
    ),
)

BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec("ctm-workloads", "Desired workload specs, keyed by workload name.", history=5),
    BucketSpec("ctm-nodes", "Node registry snapshots written by the scheduler leader."),
    BucketSpec("ctm-scheduler", "Scheduler leader lease, epoch and generation counters.", history=1),
    BucketSpec("ctm-bindings", "Replica-to-node bindings per workload, written by the scheduler leader."),
    BucketSpec("ctm-guard-policies", "Guardrail policies, keyed by policy name.", history=10),
    BucketSpec("ctm-webhook-subscriptions", "Outbound webhook subscriptions, keyed by id.", history=5),
    BucketSpec("ctm-artifacts", "Function code and WASM modules, fetched by digest.", kind="object"),
    BucketSpec("ctm-documents", "Documents uploaded for ingest.", kind="object"),
    BucketSpec("ctm-vectordb-locks", "Per-collection write locks of the vector DB, keyed by collection."),
)


def stream_config(spec: StreamSpec, settings: JetStreamSettings) -> js_api.StreamConfig:
    return js_api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=js_api.RetentionPolicy(spec.retention),
        max_age=spec.max_age,
        max_msgs=spec.max_msgs,
        max_bytes=spec.max_bytes if spec.max_bytes is not None else settings.stream_max_bytes,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        max_msg_size=settings.max_message_bytes,
        storage=js_api.StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=spec.duplicate_window if spec.duplicate_window is not None else settings.duplicate_window_s,
        allow_msg_ttl=spec.allow_msg_ttl or None,
    )


def consumer_config(spec: ConsumerSpec) -> js_api.ConsumerConfig:
    filters = list(spec.filter_subjects)
    return js_api.ConsumerConfig(
        # With `name` set, nats-py creates the consumer on
        # `$JS.API.CONSUMER.CREATE.<stream>.<name>.<filter>`, so a permission
        # can limit a client to consumers of its own filter subject.
        name=spec.durable,
        durable_name=spec.durable,
        description=spec.description,
        deliver_policy=js_api.DeliverPolicy(spec.deliver_policy),
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )


@dataclass
class ProvisionReport:
    """Record of what `provision()` did to each object: `created`, `updated` or `unchanged`."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, kind: str, name: str, action: str) -> None:
        self.actions.append((kind, name, action))
        log = logger.info if action != "unchanged" else logger.debug
        log("%s %s %s", kind, name, action)

    @property
    def changed(self) -> list[tuple[str, str, str]]:
        return [entry for entry in self.actions if entry[2] != "unchanged"]


def _differs(desired: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Return the names of the desired fields whose current value differs."""
    changed = []
    for key, value in desired.items():
        if value is None:
            continue
        existing = current.get(key)
        if key == "subjects" or key == "filter_subjects":
            if sorted(value) != sorted(existing or []):
                changed.append(key)
        elif existing != value:
            changed.append(key)
    return changed


async def ensure_stream(js: JetStreamContext, spec: StreamSpec, settings: JetStreamSettings, report: ProvisionReport) -> None:
    config = stream_config(spec, settings)
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config)
        report.add("stream", spec.name, "created")
        return

    desired = config.as_dict()
    # The retention policy of an existing stream cannot change; report it instead of failing provision.
    if info.config.retention != config.retention:
        logger.warning(
            "stream %s has retention %s, declared %s; delete the stream to change it",
            spec.name,
            info.config.retention,
            config.retention,
        )
        desired.pop("retention", None)
    changed = _differs(desired, info.config.as_dict())
    if not changed:
        report.add("stream", spec.name, "unchanged")
        return
    await js.update_stream(config)
    report.add("stream", spec.name, "updated")


async def ensure_consumer(js: JetStreamContext, spec: ConsumerSpec, report: ProvisionReport) -> None:
    config = consumer_config(spec)
    try:
        info = await js.consumer_info(spec.stream, spec.durable)
    except NotFoundError:
        await js.add_consumer(spec.stream, config)
        report.add("consumer", f"{spec.stream}/{spec.durable}", "created")
        return

    desired = config.as_dict()
    # The server fixes the deliver policy at creation time.
    desired.pop("deliver_policy", None)
    if not _differs(desired, info.config.as_dict()):
        report.add("consumer", f"{spec.stream}/{spec.durable}", "unchanged")
        return
    await js.add_consumer(spec.stream, config)
    report.add("consumer", f"{spec.stream}/{spec.durable}", "updated")


async def ensure_bucket(js: JetStreamContext, spec: BucketSpec, settings: JetStreamSettings, report: ProvisionReport) -> None:
    kind = "key-value bucket" if spec.kind == "kv" else "object store"
    try:
        if spec.kind == "kv":
            await js.key_value(spec.name)
        else:
            await js.object_store(spec.name)
        report.add(kind, spec.name, "unchanged")
        return
    except (BucketNotFoundError, NotFoundError):
        pass

    if spec.kind == "kv":
        await js.create_key_value(
            js_api.KeyValueConfig(
                bucket=spec.name,
                description=spec.description,
                history=spec.history,
                ttl=spec.ttl or None,
                max_value_size=spec.max_value_size,
                replicas=settings.replicas,
                storage=js_api.StorageType.FILE,
            )
        )
    else:
        await js.create_object_store(
            spec.name,
            js_api.ObjectStoreConfig(
                bucket=spec.name,
                description=spec.description,
                replicas=settings.replicas,
                storage=js_api.StorageType.FILE,
            ),
        )
    report.add(kind, spec.name, "created")


async def provision(
    js: JetStreamContext,
    settings: JetStreamSettings,
    *,
    streams: tuple[StreamSpec, ...] = STREAMS,
    consumers: tuple[ConsumerSpec, ...] = CONSUMERS,
    buckets: tuple[BucketSpec, ...] = BUCKETS,
) -> ProvisionReport:
    """Create or update every declared stream, consumer and bucket; safe to run any number of times."""
    report = ProvisionReport()
    steps = [
        *((("stream", stream.name), ensure_stream(js, stream, settings, report)) for stream in streams),
        *((("consumer", f"{c.stream}/{c.durable}"), ensure_consumer(js, c, report)) for c in consumers),
        *((("bucket", bucket.name), ensure_bucket(js, bucket, settings, report)) for bucket in buckets),
    ]
    for index, ((kind, name), step) in enumerate(steps):
        try:
            await step
        except (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            for _, pending in steps[index + 1 :]:
                pending.close()
            raise BusError(
                f"provisioning {kind} {name} failed ({type(exc).__name__}: {exc}); these credentials may not create "
                f"or update it: run `continuum provision` with admin credentials, and give every service the "
                f"same [jetstream] settings as the admin"
            ) from exc
    return report


def find_consumer(durable: str, stream: str | None = None) -> ConsumerSpec:
    for spec in CONSUMERS:
        if spec.durable == durable and (stream is None or spec.stream == stream):
            return spec
    raise KeyError(f"no consumer {durable!r} is declared in continuum.shared.topology")

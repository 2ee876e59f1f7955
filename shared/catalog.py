"""The subject catalog: every subject, its stream, producers, consumers and schema.

`docs/subjects.md` and `docs/asyncapi.yaml` are generated from this table by
`continuum docs generate`; a test fails when the committed files are stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from continuum.shared import schemas
from continuum.shared.schemas.guard import GuardPoliciesReply, GuardPoliciesRequest
from continuum.shared.schemas.hook import DeliveryAttempt, DeliveryTask
from continuum.shared.schemas.scheduler_api import AutoscaleReply, DeployReply, DeployRequest


@dataclass(frozen=True)
class Channel:
    """One subject pattern; `{name}` parts are name tokens, `reply` is set for request/reply."""

    name: str
    subject: str
    summary: str
    producers: str
    consumers: str
    message: type[Any] | None
    stream: str | None = None
    reply: type[Any] | None = None
    kind: Literal["event", "request"] = "event"


CHANNELS: tuple[Channel, ...] = (
    Channel("telemetry", "ctm.telemetry.{node_id}", "Node telemetry: capacity, usage, GPUs, RTTs, runtimes, replicas.",
            "agent", "scheduler", schemas.Telemetry, "TELEMETRY"),
    Channel("nodeLifecycle", "ctm.node.{node_id}.lifecycle", "Agent hello, drain and bye.",
            "agent", "scheduler", schemas.NodeLifecycle, "NODES"),
    Channel("placement", "ctm.placement.{node_id}", "Start or stop a replica on a node, with epoch and generation.",
            "scheduler", "agent", schemas.Placement, "PLACEMENTS"),
    Channel("placementFailed", "ctm.placement.failed", "Unschedulable workload with per-reason node counts.",
            "scheduler", "bridge, CLI, anyone", schemas.PlacementFailed, "PLACEMENTS"),
    Channel("workloadStatus", "ctm.workload.{workload}.status", "Replica state changes, cold-start time, errors.",
            "agent", "scheduler, CLI", schemas.WorkloadStatus, "WORKLOAD_STATUS"),
    Channel("agentPing", "ctm.agent.{node_id}.ping", "RTT probe responder.",
            "agents", "agents", None, kind="request"),
    Channel("function", "ctm.fn.{function}", "Invoke a function; replicas share the queue group ctm.fn.{function}.",
            "any client", "agent", None, reply=schemas.InvokeReply, kind="request"),
    Channel("ingest", "ctm.ingest", "Ingest request: source, collection, metadata, chunking.",
            "any client, CLI", "dataprep", schemas.IngestRequest, "INGEST"),
    Channel("ingestStatus", "ctm.ingest.{job_id}.status", "Ingest progress and completion.",
            "dataprep", "CLI, bridge, anyone", schemas.IngestStatus, "INGEST_STATUS"),
    Channel("chunks", "ctm.chunks.{collection}", "Chunk batches with vectors and metadata.",
            "dataprep", "vectordb", schemas.ChunkBatch, "CHUNKS"),
    Channel("embed", "ctm.embed", "Embed texts with the platform model.",
            "vectordb, any client", "dataprep", schemas.EmbedRequest, reply=schemas.EmbedReply, kind="request"),
    Channel("guardIn", "ctm.guard.in.{topic}", "Guarded pipeline input (stream mode).",
            "any producer", "guardrails", None, "GUARD"),
    Channel("guardOut", "ctm.guard.out.{topic}", "Allowed or redacted messages of a guarded pipeline.",
            "guardrails", "pipeline consumers", None, "GUARD"),
    Channel("guardBlocked", "ctm.guard.blocked.{topic}", "Blocked messages with their findings.",
            "guardrails", "operators, bridge", schemas.GuardedPayload, "GUARD"),
    Channel("guardAudit", "ctm.guard.audit.{topic}", "Audit record of every block (findings, never the text).",
            "guardrails", "operators", schemas.GuardAudit, "GUARD"),
    Channel("guardCheck", "ctm.guard.check", "Check a text against a policy.",
            "workflow, any client", "guardrails", schemas.GuardCheckRequest, reply=schemas.GuardCheckReply, kind="request"),
    Channel("guardPolicies", "ctm.guard.policies", "List the guardrail policies in force and rejected updates.",
            "CLI", "guardrails", GuardPoliciesRequest, reply=GuardPoliciesReply, kind="request"),
    Channel("hook", "ctm.hook.{source}.{event}", "Verified inbound webhook.",
            "bridge", "anyone", schemas.WebhookEvent, "HOOKS"),
    Channel("webhookDelivery", "ctm.webhook.delivery.{subscription}", "Outbound webhook delivery task for one subscription.",
            "bridge (fan-out)", "bridge (delivery)", DeliveryTask, "WEBHOOK_DELIVERIES"),
    Channel("webhookAttempt", "ctm.webhook.attempt.{subscription}", "Record of one outbound delivery attempt.",
            "bridge", "CLI (`continuum webhooks deliveries`)", DeliveryAttempt, "WEBHOOK_ATTEMPTS"),
    Channel("dlq", "ctm.dlq.{stream}", "Messages that could not be processed, with the error.",
            "any service", "operators", schemas.DeadLetter, "DLQ"),
    Channel("vectorQuery", "ctm.vector.query", "Similarity, full-text or hybrid query.",
            "workflow, CLI, any client", "vectordb", schemas.QueryRequest, reply=schemas.QueryReply, kind="request"),
    Channel("ragAsk", "ctm.rag.ask", "Retrieval-augmented answer with citations.",
            "CLI, any client", "workflow", schemas.AskRequest, reply=schemas.AskReply, kind="request"),
    Channel("apiDeploy", "ctm.api.deploy", "Create or update a workload from its spec.",
            "CLI, any client", "scheduler", DeployRequest, reply=DeployReply, kind="request"),
    Channel("apiAutoscale", "ctm.api.autoscale", "An agent asks for more replicas of a busy function.",
            "agent", "scheduler", schemas.ScaleRequest, reply=AutoscaleReply, kind="request"),
    Channel("api", "ctm.api.{endpoint}", "Other management endpoints: delete, scale, get, workloads, nodes, node, "
            "cordon, uncordon, drain, explain, webhooks_add, webhooks_list, webhooks_remove, webhooks_deliveries.",
            "CLI", "scheduler, bridge", None, kind="request"),
)

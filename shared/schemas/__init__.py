"""Message schemas for every subject in the catalog.

Import messages from here; the submodules group them by service area.
"""

from continuum.shared.schemas._base import Document, Event, convert, decode, encode, to_builtins, utcnow
from continuum.shared.schemas.api import ApiError, EmptyRequest, ErrorReply, NameRequest, OkReply
from continuum.shared.schemas.common import Resources, Taint, Toleration
from continuum.shared.schemas.dlq import DeadLetter
from continuum.shared.schemas.guard import (
    Finding,
    GuardAudit,
    GuardCheckReply,
    GuardCheckRequest,
    GuardedPayload,
)
from continuum.shared.schemas.hook import WebhookEvent
from continuum.shared.schemas.ingest import (
    Chunk,
    ChunkBatch,
    ChunkingOptions,
    DocumentError,
    EmbedReply,
    EmbedRequest,
    IngestRequest,
    IngestStatus,
)
from continuum.shared.schemas.invoke import InvokeError, InvokeReply
from continuum.shared.schemas.rag import AskReply, AskRequest, Citation
from continuum.shared.schemas.telemetry import (
    CpuStats,
    DiskStats,
    GpuStats,
    MemoryStats,
    NodeLifecycle,
    ReplicaSummary,
    RttSample,
    Telemetry,
)
from continuum.shared.schemas.vector import CollectionInfo, Filter, Hit, QueryReply, QueryRequest
from continuum.shared.schemas.workload import (
    AffinityTerm,
    DataLocality,
    LatencyConstraint,
    Placement,
    PlacementFailed,
    ResourceRequest,
    ScaleRequest,
    WorkloadSpec,
    WorkloadStatus,
    ZoneSpread,
)

__all__ = [
    "AffinityTerm",
    "ApiError",
    "AskReply",
    "AskRequest",
    "Chunk",
    "ChunkBatch",
    "ChunkingOptions",
    "Citation",
    "CollectionInfo",
    "CpuStats",
    "DataLocality",
    "DeadLetter",
    "DiskStats",
    "Document",
    "DocumentError",
    "EmbedReply",
    "EmbedRequest",
    "EmptyRequest",
    "ErrorReply",
    "Event",
    "Filter",
    "Finding",
    "GpuStats",
    "GuardAudit",
    "GuardCheckReply",
    "GuardCheckRequest",
    "GuardedPayload",
    "Hit",
    "IngestRequest",
    "IngestStatus",
    "InvokeError",
    "InvokeReply",
    "LatencyConstraint",
    "MemoryStats",
    "NameRequest",
    "NodeLifecycle",
    "OkReply",
    "Placement",
    "PlacementFailed",
    "QueryReply",
    "QueryRequest",
    "ReplicaSummary",
    "ResourceRequest",
    "Resources",
    "RttSample",
    "ScaleRequest",
    "Taint",
    "Telemetry",
    "Toleration",
    "WebhookEvent",
    "WorkloadSpec",
    "WorkloadStatus",
    "ZoneSpread",
    "convert",
    "decode",
    "encode",
    "to_builtins",
    "utcnow",
]

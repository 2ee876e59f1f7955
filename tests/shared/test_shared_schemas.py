"""Schema round trips, error paths and the unknown-field policy."""

from __future__ import annotations

import msgspec
import pytest

from continuum.shared.errors import SchemaError
from continuum.shared.schemas import (
    ChunkBatch,
    Chunk,
    CpuStats,
    DeadLetter,
    Event,
    GuardCheckReply,
    IngestRequest,
    MemoryStats,
    Placement,
    PlacementFailed,
    Resources,
    Telemetry,
    WebhookEvent,
    WorkloadSpec,
    WorkloadStatus,
    convert,
    decode,
    encode,
)

SAMPLES = [
    Telemetry(
        node_id="edge-1",
        seq=3,
        boot_id="b1",
        cpu=CpuStats(cores=4, utilization_pct=12.5, load_avg=[0.1, 0.2, 0.3]),
        memory=MemoryStats(total_bytes=8 << 30, available_bytes=4 << 30),
        capacity=Resources(cpu_millis=4000, memory_mb=8192),
        allocatable=Resources(cpu_millis=3500, memory_mb=7000),
    ),
    Placement(action="start", node_id="edge-1", workload="hello", replica_id="hello-0", epoch=2, generation=9,
              spec=WorkloadSpec(name="hello", artifact="hello.py", entrypoint="hello:main", replicas=1)),
    PlacementFailed(workload="big", message="0/3 nodes fit: 3 insufficient memory", total_nodes=3, reasons={"insufficient memory": 3}),
    WorkloadStatus(workload="hello", replica_id="hello-0", node_id="edge-1", state="running", cold_start_ms=42.0),
    IngestRequest(collection="docs", source="/data/docs", metadata={"team": "core"}),
    ChunkBatch(collection="docs", document_id="d1", doc_checksum="abc", model="all-MiniLM-L6-v2", dimension=2,
               chunks=[Chunk(id="c1", text="hello", vector=[0.1, 0.2], source_uri="file:///a.md")]),
    GuardCheckReply(verdict="allow"),
    WebhookEvent(source="github", event="push", delivery_id="d-1", body={"ref": "main"}),
    DeadLetter(stream="CHUNKS", consumer="vectordb", subject="ctm.chunks.docs", payload="{}", error="boom"),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_schema_round_trip_preserves_fields(message):
    decoded = decode(encode(message), type(message))

    assert decoded == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_schema_names_versioned_type(message):
    assert message.CE_TYPE.startswith("continuum.")
    assert message.CE_TYPE.endswith(f".v{message.SCHEMA_VERSION}")


def test_decode_error_names_field_path_and_type():
    with pytest.raises(SchemaError) as caught:
        decode(b'{"workload": "w", "replica_id": "r", "node_id": "n", "state": "running", "cold_start_ms": "fast"}', WorkloadStatus)

    assert caught.value.path == "$.cold_start_ms"
    assert "Expected `float | null`, got `str`" in str(caught.value)
    assert "WorkloadStatus" in str(caught.value)


def test_decode_nested_error_path():
    payload = b'{"collection": "c", "document_id": "d", "doc_checksum": "x", "model": "m", "dimension": 2, "chunks": [{"id": "a", "text": "t", "vector": ["x"], "source_uri": "u"}]}'

    with pytest.raises(SchemaError) as caught:
        decode(payload, ChunkBatch)

    assert caught.value.path == "$.chunks[0].vector[0]"


def test_decode_missing_required_field_is_named():
    with pytest.raises(SchemaError) as caught:
        decode(b'{"collection": "docs", "document_id": "d"}', ChunkBatch)

    assert "doc_checksum" in str(caught.value)


def test_decode_invalid_json_is_schema_error():
    with pytest.raises(SchemaError, match="not valid JSON"):
        decode(b"\x00\xff", Telemetry)


def test_event_ignores_unknown_fields():
    status = decode(
        b'{"workload": "w", "replica_id": "r", "node_id": "n", "state": "idle", "added_later": 1}', WorkloadStatus
    )

    assert status.state == "idle"


def test_document_rejects_unknown_fields():
    with pytest.raises(SchemaError) as caught:
        convert({"name": "w", "artifact": "a.py", "replica": 3}, WorkloadSpec)

    assert "replica" in str(caught.value)


def test_literal_field_rejects_unknown_value():
    with pytest.raises(SchemaError) as caught:
        decode(b'{"workload": "w", "replica_id": "r", "node_id": "n", "state": "exploded"}', WorkloadStatus)

    assert caught.value.path == "$.state"


def test_every_event_schema_declares_type():
    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    import continuum.shared.schemas  # noqa: F401 - registers every schema module

    missing = [cls.__name__ for cls in subclasses(Event) if not cls.CE_TYPE and cls.__module__.startswith("continuum.shared")]
    assert missing == []


def test_example_workload_file_is_valid_spec():
    from pathlib import Path

    import yaml

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "workload.yaml"

    spec = convert(yaml.safe_load(example.read_text()), WorkloadSpec)

    assert spec.name == "hello"
    assert spec.entrypoint == "hello:handler"
    assert spec.min_replicas == 0

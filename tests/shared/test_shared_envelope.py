"""CloudEvents binary mode over NATS headers, both ways, including hand-made messages."""

from __future__ import annotations

from datetime import UTC, datetime

from continuum.shared import envelope
from continuum.shared.config import JetStreamSettings
from continuum.shared.schemas import IngestRequest


def test_to_nats_sets_cloudevents_headers():
    payload, headers = envelope.to_nats(IngestRequest(collection="docs", text="hi"), source="continuum/tests", event_id="e-1")

    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == "e-1"
    assert headers["Nats-Msg-Id"] == "e-1"
    assert headers["ce-source"] == "continuum/tests"
    assert headers["ce-type"] == "continuum.ingest.request.v1"
    assert headers["content-type"] == "application/json"
    assert datetime.fromisoformat(headers["ce-time"]).tzinfo is not None
    assert b'"collection":"docs"' in payload


def test_from_nats_reads_headers_back():
    payload, headers = envelope.to_nats(IngestRequest(collection="docs"), source="continuum/tests", event_id="e-2")

    event = envelope.from_nats(payload, headers, IngestRequest, subject="ctm.ingest")

    assert event.id == "e-2"
    assert event.source == "continuum/tests"
    assert event.type == "continuum.ingest.request.v1"
    assert event.subject == "ctm.ingest"
    assert event.data.collection == "docs"


def test_from_nats_fills_defaults_for_plain_json():
    before = datetime.now(UTC)

    event = envelope.from_nats(b'{"collection": "docs", "text": "hello"}', None, IngestRequest)

    assert event.data.text == "hello"
    assert event.source == "unknown"
    assert event.type == IngestRequest.CE_TYPE
    assert len(event.id) == 32
    assert event.time >= before


def test_from_nats_uses_nats_msg_id_when_ce_id_missing():
    event = envelope.from_nats(b'{"collection": "docs"}', {"Nats-Msg-Id": "from-cli"}, IngestRequest)

    assert event.id == "from-cli"


async def test_hand_published_message_reaches_consumer(nc, js, unique):
    """A `nats pub ctm.ingest '{...}'` with no headers is accepted by a consumer of the schema."""
    from continuum.shared.topology import ConsumerSpec, ProvisionReport, StreamSpec, ensure_stream

    stream = StreamSpec(f"HAND_{unique}", (f"hand.{unique}",), "test")
    await ensure_stream(js, stream, JetStreamSettings(), ProvisionReport())
    await nc.publish(f"hand.{unique}", b'{"collection": "docs", "text": "by hand"}')
    await nc.flush()

    sub = await js.pull_subscribe(f"hand.{unique}", durable=f"d{unique}", stream=stream.name)
    msg = (await sub.fetch(1, timeout=5))[0]
    event = envelope.from_nats(msg.data, msg.headers, IngestRequest, subject=msg.subject)

    assert event.data.text == "by hand"
    assert event.source == "unknown"

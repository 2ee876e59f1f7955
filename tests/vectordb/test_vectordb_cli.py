"""The `continuum query`, `collections` and `collection` commands against a running vectordb service."""

from __future__ import annotations

import json
from typing import Any

import pytest

from continuum.shared import bus
from continuum.shared.cli.vector import parse_filter
from continuum.shared.config import Settings
from continuum.shared.rpc import ApiCallError
from continuum.shared.schemas import CollectionRequest, CollectionStats, Filter
from continuum.shared.testing import run_cli
from vectordb_helpers import call, embed_texts, eventually, make_batch, publish_batch

TEXTS = ["JetStream keeps messages for durable consumers.", "Sourdough bread rises overnight."]


async def continuum(settings: Settings, *args: str) -> tuple[int, str, str]:
    return await run_cli(settings.nats.url, *args, timeout=90)


@pytest.mark.parametrize("storage", ["local"], indirect=True)
@pytest.mark.timeout(120)
async def test_cli_queries_and_lists_collections(
    nc: bus.NATS, js: bus.JetStreamContext, settings: Settings, vectordb: Any, embed_responder: None, embedding_model: Any, unique: str
) -> None:
    collection = f"cli-{unique}"
    await publish_batch(js, make_batch(collection, "doc", TEXTS, embed_texts(embedding_model, TEXTS), metadata={"lang": "en"}))

    async def loaded() -> bool:
        try:
            return (await call(nc, "stats", CollectionRequest(collection=collection), CollectionStats)).info.rows == 2
        except ApiCallError:
            return False

    await eventually(loaded, what="two rows")

    code, stdout, _ = await continuum(settings, "query", "bread baking", "-c", collection, "-k", "1", "-f", "metadata.lang=en", "-o", "json")
    assert code == 0
    assert [hit["text"] for hit in json.loads(stdout)["hits"]] == [TEXTS[1]]

    code, stdout, _ = await continuum(settings, "query", "durable", "-c", collection, "--mode", "fts")
    assert code == 0
    assert "JetStream keeps messages" in stdout

    code, stdout, _ = await continuum(settings, "collections", "--output", "json")
    assert code == 0
    listed = {item["name"]: item for item in json.loads(stdout)}
    assert listed[collection]["rows"] == 2

    code, _, stderr = await continuum(settings, "query", "x", "-c", "missing-collection")
    assert code == 1
    assert "not_found" in stderr


def test_parse_filter_reads_operators_and_json_values() -> None:
    assert parse_filter("metadata.lang=en") == Filter(field="metadata.lang", op="eq", value="en")
    assert parse_filter("metadata.year>=2023") == Filter(field="metadata.year", op="gte", value=2023)
    assert parse_filter("metadata.public!=true") == Filter(field="metadata.public", op="ne", value=True)
    assert parse_filter('document_id=["a","b"]') == Filter(field="document_id", op="in", value=["a", "b"])
    assert parse_filter("title~guide") == Filter(field="title", op="contains", value="guide")

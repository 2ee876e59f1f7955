"""The generated AsyncAPI document and subject page match the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from continuum.shared.asyncapi import build_document, render_asyncapi, render_subjects_page
from continuum.shared.catalog import CHANNELS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_asyncapi_is_current():
    assert (DOCS / "asyncapi.yaml").read_text() == render_asyncapi(), "run `continuum docs generate`"


def test_committed_subjects_page_is_current():
    assert (DOCS / "subjects.md").read_text() == render_subjects_page(), "run `continuum docs generate`"


def _resolve(document: dict, ref: str) -> object:
    node: object = document
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, f"dangling $ref {ref}"
        node = node[part]
    return node


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        for value in node.values():
            found += _refs(value)
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def test_asyncapi_refs_resolve():
    document = yaml.safe_load(render_asyncapi())

    refs = _refs(document)

    assert document["asyncapi"] == "3.0.0"
    assert len(refs) > len(CHANNELS)
    for ref in refs:
        _resolve(document, ref)


def test_asyncapi_lists_every_channel_once():
    document = build_document()

    addresses = [channel["address"] for channel in document["channels"].values()]

    assert sorted(addresses) == sorted(channel.subject for channel in CHANNELS)
    assert len(set(addresses)) == len(addresses)


def test_committed_config_reference_is_current():
    from continuum.shared.configref import splice_reference

    page = (DOCS / "operations.md").read_text()

    assert splice_reference(page) == page, "run `continuum docs generate`"

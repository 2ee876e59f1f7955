"""Chunk limits, offsets, headings and overlap, counted with the model's own tokenizer."""

from __future__ import annotations

import pytest

from continuum.services.dataprep.chunking import Chunker
from continuum.services.dataprep.cleaning import clean_document
from continuum.services.dataprep.documents import RawDocument
from continuum.services.dataprep.errors import RequestError
from continuum.services.dataprep.parsers import parse

SENTENCES = [f"Sentence number {n} explains how the {n}th widget connects to the message bus." for n in range(200)]
MARKDOWN = "\n\n".join(
    [
        "# Manual",
        "Short introduction.",
        "## Setup",
        " ".join(SENTENCES[:60]),
        "### Details",
        "x" * 3000,
        " ".join(f"word{n}" for n in range(900)),
        "## Usage",
        *[" ".join(SENTENCES[i : i + 3]) for i in range(60, 200, 3)],
    ]
)


@pytest.fixture
def chunker(tokenizer) -> Chunker:  # noqa: ANN001
    return Chunker(tokenizer, model_max_tokens=256)


def document(text: str = MARKDOWN):  # noqa: ANN201
    raw = RawDocument(uri="file:///manual.md", name="manual.md", body=text.encode())
    title, blocks = parse(raw)
    return clean_document(raw.uri, title, blocks)


@pytest.mark.parametrize("max_tokens", [32, 64, 128, 256])
def test_chunks_never_exceed_max_tokens(chunker, tokenizer, max_tokens):  # noqa: ANN001
    spans = chunker.chunk(document(), max_tokens, max_tokens // 4)
    assert len(spans) > 5
    for span in spans:
        text = document().text[span.start : span.end]
        real = len(tokenizer.encode(text).ids)
        assert real <= max_tokens
        assert span.token_count == real


def test_offsets_cover_all_text(chunker):  # noqa: ANN001
    doc = document()
    spans = chunker.chunk(doc, 128, 0)
    covered = "".join(doc.text[s.start : s.end] for s in spans)
    assert covered.replace("\n", "").replace(" ", "") == doc.text.replace("\n", "").replace(" ", "")
    for previous, current in zip(spans, spans[1:]):
        assert current.start >= previous.end


def test_offsets_point_at_chunk_text(chunker):  # noqa: ANN001
    doc = document()
    for span in chunker.chunk(doc, 64, 16):
        text = doc.text[span.start : span.end]
        assert text == text.strip()
        assert text


def test_headings_kept_and_never_crossed(chunker):  # noqa: ANN001
    doc = document()
    spans = chunker.chunk(doc, 128, 16)
    paths = [tuple(span.heading_path) for span in spans]
    assert paths[0] == ("Manual",)
    assert ("Manual", "Setup") in paths
    assert ("Manual", "Setup", "Details") in paths
    assert ("Manual", "Usage") in paths
    for span in spans:
        text = doc.text[span.start : span.end]
        assert not ("Short introduction" in text and "Sentence number" in text)
    usage = [doc.text[s.start : s.end] for s in spans if s.heading_path == ["Manual", "Usage"]]
    assert usage[0].startswith("Usage")


def test_overlap_repeats_end_of_previous_chunk(chunker, tokenizer):  # noqa: ANN001
    doc = document()
    spans = [s for s in chunker.chunk(doc, 64, 16) if s.heading_path == ["Manual", "Setup"]]
    assert len(spans) >= 3
    for previous, current in zip(spans, spans[1:]):
        assert current.start < previous.end
        shared = doc.text[current.start : previous.end]
        assert 0 < len(tokenizer.encode(shared, add_special_tokens=False).ids) <= 16


def test_zero_overlap_gives_disjoint_chunks(chunker):  # noqa: ANN001
    spans = chunker.chunk(document(), 64, 0)
    for previous, current in zip(spans, spans[1:]):
        assert current.start >= previous.end


@pytest.mark.parametrize(("max_tokens", "overlap"), [(512, 0), (5, 0), (64, 40), (64, -1)])
def test_invalid_limits_raise_request_error(chunker, max_tokens, overlap):  # noqa: ANN001
    with pytest.raises(RequestError, match="invalid chunking"):
        chunker.chunk(document(), max_tokens, overlap)

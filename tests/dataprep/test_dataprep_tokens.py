"""Token counts that the chunker adds up instead of encoding each chunk again, checked on real text.

The text is CPython's pydoc topics (`pydoc_data.topics`): about 0.5 MB of
English prose, code, tables and some non-ASCII characters.
"""

from __future__ import annotations

import random
from bisect import bisect_left

import pytest
from pydoc_data.topics import topics
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from continuum.services.dataprep.chunking import Chunker, _AsciiEncoder, counts_are_additive
from continuum.services.dataprep.cleaning import clean_document
from continuum.services.dataprep.documents import RawDocument
from continuum.services.dataprep.parsers import parse

TOPICS = [topics[name] for name in sorted(topics)]


def word_starts(encoding) -> list[int]:  # noqa: ANN001
    """Character offsets where a word (a pre-tokenizer piece) starts."""
    word_ids = encoding.word_ids
    offsets = encoding.offsets
    return [
        offsets[index][0]
        for index in range(len(word_ids))
        if index == 0 or word_ids[index] != word_ids[index - 1]
    ]


def clean(text: str, name: str = "topics.md"):  # noqa: ANN201
    raw = RawDocument(uri=f"file:///{name}", name=name, body=text.encode())
    title, blocks = parse(raw)
    return clean_document(raw.uri, title, blocks)


def test_minilm_tokenizer_counts_are_additive(tokenizer):  # noqa: ANN001
    assert counts_are_additive(tokenizer)


def test_word_boundary_cuts_keep_token_counts(tokenizer):  # noqa: ANN001
    generator = random.Random(7)
    checked = 0
    for text in generator.sample(TOPICS, 60):
        whole = tokenizer.encode(text, add_special_tokens=False)
        starts = word_starts(whole)
        ids = whole.ids
        token_starts = [start for start, _ in whole.offsets]
        for _ in range(10):
            first, last = sorted(generator.sample(range(len(starts) + 1), 2))
            begin = starts[first]
            end = starts[last] if last < len(starts) else len(text)
            inside = ids[bisect_left(token_starts, begin) : bisect_left(token_starts, end)]
            piece = tokenizer.encode(text[begin:end], add_special_tokens=False)
            assert len(piece.ids) == len(inside), text[begin:end][:80]
            assert piece.ids == inside
            checked += 1
    assert checked == 600


def test_ascii_encoder_matches_full_tokenizer(tokenizer):  # noqa: ANN001
    fast = _AsciiEncoder(tokenizer)
    paragraphs = [paragraph for text in TOPICS for paragraph in text.split("\n\n")]
    pieces = [paragraph for paragraph in paragraphs if fast.accepts(paragraph)]
    pieces.append("Mixed CASE Words, tabs\tand\nnewlines: DON'T split 3.14 ###")
    assert len(pieces) > len(paragraphs) // 2
    expected = tokenizer.encode_batch(pieces, add_special_tokens=False)
    for piece, got, want in zip(pieces, fast.encode_batch(pieces), expected):
        assert got.ids == want.ids, piece[:80]
        assert got.offsets == want.offsets, piece[:80]
        assert got.word_ids == want.word_ids, piece[:80]


@pytest.mark.parametrize("piece", ["café au lait", "x [SEP] y", "bell\x07", "中文"])
def test_ascii_encoder_rejects_pieces_it_cannot_reproduce(tokenizer, piece):  # noqa: ANN001
    assert not _AsciiEncoder(tokenizer).accepts(piece)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("max_tokens", "overlap"), [(32, 8), (128, 0), (256, 32)])
def test_chunk_counts_match_tokenizer_on_pydoc_topics(tokenizer, max_tokens, overlap):  # noqa: ANN001
    document = clean("\n\n".join(TOPICS[::3]), "topics.txt")
    spans = Chunker(tokenizer, model_max_tokens=256).chunk(document, max_tokens, overlap)
    encodings = tokenizer.encode_batch([document.text[s.start : s.end] for s in spans], add_special_tokens=True)
    assert len(spans) > 50
    for span, encoding in zip(spans, encodings):
        assert span.token_count == len(encoding.ids), document.text[span.start : span.end][:80]
        assert span.token_count <= max_tokens
        assert not span.verify


def test_word_longer_than_limit_is_cut_within_limit(tokenizer):  # noqa: ANN001
    generator = random.Random(3)
    # 99 letters: one word just under WordPiece's 100-character [UNK] limit,
    # which encodes to far more than 16 tokens.
    word = "".join(generator.choice("qxzjkvw") for _ in range(99))
    document = clean(f"Intro sentence here.\n\n{word} tail words after it.", "long.txt")
    spans = Chunker(tokenizer, model_max_tokens=256).chunk(document, 16, 0)
    assert len(spans) >= 3
    for span in spans:
        text = document.text[span.start : span.end]
        assert span.token_count == len(tokenizer.encode(text).ids)
        assert span.token_count <= 16


@pytest.fixture(scope="module")
def byte_level_tokenizer() -> Tokenizer:
    """A small byte-level BPE trained on the topics, whose counts need not add up at word boundaries."""
    trained = Tokenizer(models.BPE())
    trained.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False)
    trained.train_from_iterator(TOPICS[:200], trainer=trainer)
    return trained


def test_other_tokenizer_chunks_are_verified(byte_level_tokenizer):  # noqa: ANN001
    chunker = Chunker(byte_level_tokenizer, model_max_tokens=256)
    document = clean("\n\n".join(TOPICS[:40]), "topics.txt")
    spans = chunker.chunk(document, 64, 8)
    assert not chunker.additive
    assert len(spans) > 10
    for span in spans:
        real = len(byte_level_tokenizer.encode(document.text[span.start : span.end]).ids)
        assert span.token_count == real
        assert real <= 64

"""Structure-aware chunking measured in tokens of the embedding model's tokenizer.

A chunk never crosses a heading, because each section (a heading and the
blocks up to the next heading of the same or a higher level) is packed on its
own. Inside a section whole blocks are packed greedily. A block above the
limit is split into sentences, and a sentence above the limit is split at
word starts between tokens. Consecutive chunks of one section overlap by up to `overlap_tokens`
tokens, cut at a word start.

`token_count` is the length of the model input for the chunk text, the
special tokens ([CLS], [SEP]) included, so `max_tokens` equal to the model's
window means no chunk is ever truncated.

Each document is tokenized once: its blocks go through one `encode_batch`
call, and chunks are built from the token offsets. A chunk always starts at
a word start and ends at a word end, and the gaps between the pieces it is
built from hold only whitespace. For a WordPiece tokenizer with the BERT
pre-tokenizer (all-MiniLM-L6-v2 is one) tokens never span a word boundary,
so the chunk's token count is the sum of its pieces' counts and needs no
second pass. A chunk that cuts a word longer than the limit, and every chunk
of any other tokenizer, is encoded again and shrunk until it fits.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from continuum.services.dataprep.documents import CleanDocument
from continuum.services.dataprep.errors import RequestError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

# A sentence ends at ., ! or ? (optionally closed by quotes or brackets)
# followed by whitespace, or at a line break. Group 1 or 2 is the whitespace
# between two sentences, so the sentences and the gaps tile the block.
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*(\s+)|(\n+)")
# ASCII control characters other than tab and newline, which BertNormalizer
# removes or turns into spaces.
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class ChunkSpan:
    """A chunk of the cleaned text: `text[start:end]`, under `heading_path`.

    `verify` marks a chunk whose count is not a sum of exact piece counts, so
    the chunker encodes it again before returning it.
    """

    start: int
    end: int
    heading_path: list[str]
    token_count: int = 0
    verify: bool = False


class _TokenizedBlock:
    """One block of the cleaned text and its encoding, without special tokens."""

    def __init__(self, start: int, end: int, encoding: Encoding) -> None:
        self.start = start
        self.end = end
        self.encoding = encoding
        self.count = len(encoding)

    @cached_property
    def word_ids(self) -> list[int | None]:
        return self.encoding.word_ids

    @cached_property
    def _offsets(self) -> list[tuple[int, int]]:
        return self.encoding.offsets

    @cached_property
    def starts(self) -> list[int]:
        """Absolute character offset where each token starts."""
        return [self.start + start for start, _ in self._offsets]

    @cached_property
    def ends(self) -> list[int]:
        """Absolute character offset where each token ends."""
        return [self.start + end for _, end in self._offsets]

    def token_start(self, index: int) -> int:
        """Return the absolute character offset where token `index` starts."""
        return self.start + self.encoding.token_to_chars(index)[0]

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """Return the indexes `[first, last)` of the tokens that start inside `[start, end)`."""
        return bisect_left(self.starts, start), bisect_left(self.starts, end)


@dataclass
class _Unit:
    """A piece that is never split further: a block, a sentence or a token window.

    Its tokens are `block.encoding[first : first + tokens]`. `exact` is False
    for a window cut inside a word, whose text may encode to other tokens.
    """

    start: int
    end: int
    tokens: int
    block: _TokenizedBlock
    first: int = 0
    exact: bool = True

@dataclass
class _Section:
    heading_path: list[str]
    start: int
    end: int
    blocks: list[tuple[int, int]]
    headings_only: bool = True


def special_token_count(tokenizer: Tokenizer) -> int:
    return tokenizer.num_special_tokens_to_add(False)


def counts_are_additive(tokenizer: Tokenizer) -> bool:
    """Tell whether token counts of texts cut at word boundaries add up to the count of the whole.

    True for WordPiece behind the BERT pre-tokenizer and normalizer: the
    normalizer works per character, the pre-tokenizer splits at whitespace
    and at every punctuation character, and WordPiece encodes each word on
    its own. A property test checks this on real text.
    """
    from tokenizers import models, normalizers, pre_tokenizers

    return (
        isinstance(tokenizer.model, models.WordPiece)
        and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
        and (tokenizer.normalizer is None or isinstance(tokenizer.normalizer, normalizers.BertNormalizer))
    )


class _AsciiEncoder:
    """Encode plain ASCII pieces without BertNormalizer, which dominates the encoding time.

    On printable ASCII text (plus tab and newline) BertNormalizer only
    lowercases and turns whitespace into spaces: NFD and accent stripping
    change nothing, and there are no CJK or control characters. So
    `str.lower()` followed by the same tokenizer without a normalizer yields
    the same ids and offsets. Pieces that contain an added token (such as
    "[SEP]", matched before normalization) take the normal path.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        from tokenizers import Tokenizer as TokenizerClass

        self.lowercase = bool(tokenizer.normalizer.lowercase)
        self.plain = TokenizerClass.from_str(tokenizer.to_str())
        self.plain.normalizer = None
        self.added = [token.content for token in tokenizer.get_added_tokens_decoder().values()]

    def accepts(self, piece: str) -> bool:
        if not piece.isascii() or _ASCII_CONTROL.search(piece):
            return False
        return not any(token in piece for token in self.added)

    def encode_batch(self, pieces: list[str]) -> list[Encoding]:
        if self.lowercase:
            pieces = [piece.lower() for piece in pieces]
        return self.plain.encode_batch(pieces, add_special_tokens=False)


class Chunker:
    """Split cleaned documents into chunks of at most `max_tokens` model tokens."""

    def __init__(self, tokenizer: Tokenizer, *, model_max_tokens: int) -> None:
        from tokenizers import normalizers

        self.tokenizer = tokenizer
        self.model_max_tokens = model_max_tokens
        self.specials = special_token_count(tokenizer)
        self.additive = counts_are_additive(tokenizer)
        self._ascii: _AsciiEncoder | None = None
        if self.additive and isinstance(tokenizer.normalizer, normalizers.BertNormalizer):
            self._ascii = _AsciiEncoder(tokenizer)

    def validate(self, max_tokens: int, overlap_tokens: int) -> None:
        """Raise RequestError for limits the model cannot honour."""
        if max_tokens <= self.specials + 8:
            raise RequestError(f"invalid chunking.max_tokens {max_tokens}: use at least {self.specials + 9}")
        if max_tokens > self.model_max_tokens:
            raise RequestError(
                f"invalid chunking.max_tokens {max_tokens}: the embedding model reads at most "
                f"{self.model_max_tokens} tokens; use {self.model_max_tokens} or less"
            )
        if overlap_tokens < 0 or overlap_tokens >= max_tokens // 2:
            raise RequestError(
                f"invalid chunking.overlap_tokens {overlap_tokens}: use 0 up to {max_tokens // 2 - 1} "
                f"(less than half of max_tokens {max_tokens})"
            )

    def chunk(self, document: CleanDocument, max_tokens: int, overlap_tokens: int) -> list[ChunkSpan]:
        self.validate(max_tokens, overlap_tokens)
        budget = max_tokens - self.specials
        text = document.text
        sections = self._sections(document)
        tokenized = iter(self._tokenize(text, [block for section in sections for block in section.blocks]))

        chunks: list[ChunkSpan] = []
        for section in sections:
            units: list[_Unit] = []
            for _ in section.blocks:
                units.extend(self._units(text, next(tokenized), budget))
            chunks.extend(self._pack(section, units, budget, overlap_tokens))

        if self.additive:
            self._enforce_limit(text, [chunk for chunk in chunks if chunk.verify], max_tokens)
        else:
            self._enforce_limit(text, chunks, max_tokens)
        return chunks

    # Sections and units -----------------------------------------------------

    def _sections(self, document: CleanDocument) -> list[_Section]:
        sections: list[_Section] = []
        path: list[tuple[int, str]] = []
        current: _Section | None = None
        for span in document.spans:
            if span.block.kind == "heading":
                level = span.block.level or 1
                path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, span.block.text)]
                if current is not None and current.headings_only and len(path) > len(current.heading_path):
                    # A heading followed directly by a subheading joins the subsection,
                    # so no chunk consists of a lone heading.
                    current.heading_path = [title for _, title in path]
                else:
                    current = _Section([title for _, title in path], span.start, span.end, [])
                    sections.append(current)
            elif current is not None:
                current.headings_only = False
            if current is None:
                current = _Section([], span.start, span.end, [], headings_only=False)
                sections.append(current)
            current.blocks.append((span.start, span.end))
            current.end = span.end
        return sections

    def _tokenize(self, text: str, blocks: list[tuple[int, int]]) -> list[_TokenizedBlock]:
        """Encode every block of the document, in one batch per encoder."""
        pieces = [text[start:end] for start, end in blocks]
        encodings: list[Encoding | None] = [None] * len(pieces)
        rest = list(range(len(pieces)))
        if self._ascii is not None:
            fast = [index for index in rest if self._ascii.accepts(pieces[index])]
            rest = [index for index in rest if not self._ascii.accepts(pieces[index])]
            for index, encoding in zip(fast, self._ascii.encode_batch([pieces[i] for i in fast])):
                encodings[index] = encoding
        if rest:
            batch = self.tokenizer.encode_batch([pieces[i] for i in rest], add_special_tokens=False)
            for index, encoding in zip(rest, batch):
                encodings[index] = encoding
        return [_TokenizedBlock(start, end, encoding) for (start, end), encoding in zip(blocks, encodings)]

    def _units(self, text: str, block: _TokenizedBlock, budget: int) -> list[_Unit]:
        if block.count <= budget:
            return [_Unit(block.start, block.end, block.count, block)]
        units: list[_Unit] = []
        for start, end in _sentence_spans(text, block.start, block.end):
            first, last = block.token_range(start, end)
            if last - first <= budget:
                units.append(_Unit(start, end, last - first, block, first))
            else:
                units.extend(_split_tokens(block, first, last, budget))
        return units

    # Packing ----------------------------------------------------------------

    def _pack(self, section: _Section, units: list[_Unit], budget: int, overlap_tokens: int) -> list[ChunkSpan]:
        chunks: list[ChunkSpan] = []
        current: list[_Unit] = []
        tokens = 0
        overlap_start: int | None = None
        overlap_exact = True
        for unit in units:
            if current and tokens + unit.tokens > budget:
                chunks.append(self._span(section, current, overlap_start, tokens, overlap_exact))
                overlap_start, tokens = _overlap(current, overlap_tokens, budget - unit.tokens)
                overlap_exact = overlap_start is None or all(part.exact for part in current)
                current = []
            current.append(unit)
            tokens += unit.tokens
        if current:
            chunks.append(self._span(section, current, overlap_start, tokens, overlap_exact))
        return chunks

    def _span(
        self, section: _Section, units: list[_Unit], overlap_start: int | None, tokens: int, overlap_exact: bool
    ) -> ChunkSpan:
        start = units[0].start if overlap_start is None else overlap_start
        exact = overlap_exact and all(unit.exact for unit in units)
        return ChunkSpan(start, units[-1].end, list(section.heading_path), tokens + self.specials, verify=not exact)

    # Verification -----------------------------------------------------------

    def _enforce_limit(self, text: str, chunks: list[ChunkSpan], max_tokens: int) -> None:
        """Encode `chunks` again, store their real counts and shrink any above `max_tokens`."""
        if not chunks:
            return
        encodings = self.tokenizer.encode_batch([text[c.start : c.end] for c in chunks], add_special_tokens=True)
        for chunk, encoding in zip(chunks, encodings):
            chunk.token_count = len(encoding.ids)
            while chunk.token_count > max_tokens:
                # Drop the tokens above the limit from the end.
                excess = chunk.token_count - max_tokens
                content = [offset for offset in encoding.offsets if offset != (0, 0)]
                chunk.end = chunk.start + content[max(len(content) - excess - 1, 0)][0]
                encoding = self.tokenizer.encode(text[chunk.start : chunk.end], add_special_tokens=True)
                chunk.token_count = len(encoding.ids)
            chunk.verify = False


def _split_tokens(block: _TokenizedBlock, first: int, last: int, budget: int) -> list[_Unit]:
    """Cut the tokens `[first, last)` of one long sentence into windows of at most `budget` tokens.

    A window ends at a word start where one exists, so its count is exact. A
    word longer than `budget` tokens is cut inside, and that window is marked
    inexact.
    """
    word_ids = block.word_ids
    units: list[_Unit] = []
    while first < last:
        stop = min(first + budget, last)
        exact = True
        if stop < last:
            cut = stop
            while cut > first + 1 and word_ids[cut] == word_ids[cut - 1]:
                cut -= 1
            if word_ids[cut] != word_ids[cut - 1]:
                stop = cut
            else:
                exact = False
        units.append(_Unit(block.starts[first], block.ends[stop - 1], stop - first, block, first, exact))
        first = stop
    return units


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = start
    for match in _SENTENCE_END.finditer(text, start, end):
        gap_start, gap_end = match.span(1) if match.group(1) is not None else match.span(2)
        if gap_start > position:
            spans.append((position, gap_start))
        position = gap_end
    if position < end:
        spans.append((position, end))
    return spans


def _overlap(units: list[_Unit], overlap_tokens: int, room: int) -> tuple[int | None, int]:
    """Return where the next chunk starts (a word start in the last units) and its overlap token count.

    Walks back from the end over at most `overlap_tokens` tokens and keeps
    the earliest word start that still fits.
    """
    limit = min(overlap_tokens, room)
    start: int | None = None
    count = 0
    counted = 0
    for unit in reversed(units):
        word_ids = unit.block.word_ids
        last = unit.first + unit.tokens
        for index in range(last - 1, unit.first - 1, -1):
            tokens = counted + last - index
            if tokens > limit:
                return start, count
            if index == unit.first or word_ids[index] != word_ids[index - 1]:
                start, count = unit.block.token_start(index), tokens
        counted += unit.tokens
    return start, count

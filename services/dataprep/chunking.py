"""Structure-aware chunking measured in tokens of the embedding model's tokenizer.

A chunk never crosses a heading: each section (a heading and the blocks up to
the next heading of the same or a higher level) is packed on its own. Inside
a section whole blocks are packed greedily; a block above the limit is split
into sentences, and a sentence above the limit at word starts between
tokens. Consecutive chunks of one section overlap by up to `overlap_tokens`
tokens, cut at a word start.

`token_count` is the length of the model input for the chunk text, the
special tokens ([CLS], [SEP]) included, so `max_tokens` equal to the model's
window means no chunk is ever truncated. Every chunk is re-tokenized at the
end and shrunk if it exceeds the limit, so the limit holds even for
tokenizers whose counts are not additive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from continuum.services.dataprep.documents import CleanDocument
from continuum.services.dataprep.errors import RequestError

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

# A sentence ends at ., ! or ? (optionally closed by a quote or bracket)
# followed by whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


@dataclass
class ChunkSpan:
    """A chunk of the cleaned text: `text[start:end]`, under `heading_path`."""

    start: int
    end: int
    heading_path: list[str]
    token_count: int = 0


@dataclass
class _Unit:
    """A piece that is never split further: a block, a sentence or a token window."""

    start: int
    end: int
    tokens: int
    # Character offsets (absolute) of the word-start tokens, used to cut an overlap.
    word_starts: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class _Section:
    heading_path: list[str]
    start: int
    end: int
    blocks: list[tuple[int, int]]
    headings_only: bool = True


def special_token_count(tokenizer: Tokenizer) -> int:
    return tokenizer.num_special_tokens_to_add(False)


class Chunker:
    """Split cleaned documents into chunks of at most `max_tokens` model tokens."""

    def __init__(self, tokenizer: Tokenizer, *, model_max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.model_max_tokens = model_max_tokens
        self.specials = special_token_count(tokenizer)

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
        chunks: list[ChunkSpan] = []
        for section in self._sections(document):
            units = self._units(text, section.blocks, budget)
            chunks.extend(self._pack(section, units, budget, overlap_tokens))
        return self._enforce_limit(text, chunks, max_tokens)

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

    def _encode(self, pieces: list[str]) -> list[Encoding]:
        return self.tokenizer.encode_batch(pieces, add_special_tokens=False)

    def _units(self, text: str, blocks: list[tuple[int, int]], budget: int) -> list[_Unit]:
        encodings = self._encode([text[start:end] for start, end in blocks])
        units: list[_Unit] = []
        for (start, end), encoding in zip(blocks, encodings):
            if len(encoding.ids) <= budget:
                units.append(self._unit(start, end, encoding))
            else:
                units.extend(self._split_block(text, start, end, budget))
        return units

    def _unit(self, start: int, end: int, encoding: Encoding) -> _Unit:
        starts: list[tuple[int, int]] = []
        previous_word = None
        for index, (word, offsets) in enumerate(zip(encoding.word_ids, encoding.offsets)):
            if word != previous_word:
                starts.append((index, start + offsets[0]))
            previous_word = word
        return _Unit(start, end, len(encoding.ids), starts)

    def _split_block(self, text: str, start: int, end: int, budget: int) -> list[_Unit]:
        sentences = _sentence_spans(text, start, end)
        encodings = self._encode([text[s:e] for s, e in sentences])
        units: list[_Unit] = []
        for (s, e), encoding in zip(sentences, encodings):
            if len(encoding.ids) <= budget:
                units.append(self._unit(s, e, encoding))
            else:
                units.extend(self._split_tokens(text, s, encoding, budget))
        return units

    def _split_tokens(self, text: str, start: int, encoding: Encoding, budget: int) -> list[_Unit]:
        """Cut one long sentence into windows of at most `budget` tokens, at word starts where possible."""
        offsets = encoding.offsets
        word_ids = encoding.word_ids
        units: list[_Unit] = []
        first = 0
        total = len(offsets)
        while first < total:
            last = min(first + budget, total)
            if last < total:
                cut = last
                while cut > first + 1 and word_ids[cut] == word_ids[cut - 1]:
                    cut -= 1
                last = cut if cut > first + 1 else last
            piece_start = start + offsets[first][0]
            piece_end = start + offsets[last - 1][1]
            window = self.tokenizer.encode(text[piece_start:piece_end], add_special_tokens=False)
            units.append(self._unit(piece_start, piece_end, window))
            first = last
        return units

    # Packing ----------------------------------------------------------------

    def _pack(self, section: _Section, units: list[_Unit], budget: int, overlap_tokens: int) -> list[ChunkSpan]:
        chunks: list[ChunkSpan] = []
        current: list[_Unit] = []
        tokens = 0
        overlap_start: int | None = None
        overlap_count = 0
        for unit in units:
            if current and tokens + unit.tokens > budget:
                chunks.append(self._span(section, current, overlap_start, tokens))
                overlap_start, overlap_count = _overlap(current, overlap_tokens, budget - unit.tokens)
                current, tokens = [], overlap_count
            current.append(unit)
            tokens += unit.tokens
        if current:
            chunks.append(self._span(section, current, overlap_start, tokens))
        return chunks

    def _span(self, section: _Section, units: list[_Unit], overlap_start: int | None, tokens: int) -> ChunkSpan:
        start = units[0].start if overlap_start is None else overlap_start
        return ChunkSpan(start, units[-1].end, list(section.heading_path), tokens + self.specials)

    # Verification -----------------------------------------------------------

    def _enforce_limit(self, text: str, chunks: list[ChunkSpan], max_tokens: int) -> list[ChunkSpan]:
        if not chunks:
            return chunks
        encodings = self.tokenizer.encode_batch([text[c.start : c.end] for c in chunks], add_special_tokens=True)
        for chunk, encoding in zip(chunks, encodings):
            chunk.token_count = len(encoding.ids)
            while chunk.token_count > max_tokens:
                # Drop the tokens above the limit from the end; only tokenizers
                # whose counts are not additive ever get here.
                excess = chunk.token_count - max_tokens
                content = [offset for offset in encoding.offsets if offset != (0, 0)]
                chunk.end = chunk.start + content[max(len(content) - excess - 1, 0)][0]
                encoding = self.tokenizer.encode(text[chunk.start : chunk.end], add_special_tokens=True)
                chunk.token_count = len(encoding.ids)
        return chunks


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    position = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.start() > position:
            spans.append((position, match.start()))
        position = match.end()
    if position < end:
        spans.append((position, end))
    return spans


def _overlap(units: list[_Unit], overlap_tokens: int, room: int) -> tuple[int | None, int]:
    """Return where the next chunk starts (a word start in the last units) and its overlap token count."""
    wanted = min(overlap_tokens, room)
    if wanted <= 0:
        return None, 0
    taken = 0
    start: int | None = None
    for unit in reversed(units):
        candidates = [(unit.tokens - index, offset) for index, offset in unit.word_starts]
        fitting = [(count, offset) for count, offset in candidates if taken + count <= wanted]
        if not fitting:
            break
        count, offset = max(fitting)
        start = offset
        if count < unit.tokens:
            return start, taken + count
        taken += unit.tokens
    return start, taken if start is not None else 0

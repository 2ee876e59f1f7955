"""Composing an answer from retrieved passages: extractive quotes, or an OpenAI-compatible model."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import aiohttp

from continuum.services.workflow.errors import StepFailed
from continuum.shared.logs import register_secret
from continuum.shared.schemas import Hit

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")

# Words that say nothing about which sentence answers a question.
STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it its of on or so that the this to was what when "
    "where which who why will with you your use used using about into than then there these those".split()
)


@dataclass(frozen=True)
class Passage:
    """A retrieved passage after the retrieval guardrail; `number` is its citation marker."""

    number: int
    hit: Hit
    text: str


def keywords(text: str) -> set[str]:
    """Lower-case content words of `text`; dunder names like `__enter__` are kept whole."""
    return {word.lower() for word in _WORD.findall(text) if word.lower() not in STOPWORDS and len(word) > 1}


def split_sentences(text: str) -> list[str]:
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        flat = " ".join(paragraph.split())
        sentences.extend(part.strip() for part in _SENTENCE_END.split(flat) if part.strip())
    return sentences


def _stems(text: str) -> set[str]:
    """Keywords cut to six characters, so `rotate` and `rotating` match."""
    return {word[:6] for word in keywords(text)}


def best_sentences(question: str, text: str, max_chars: int) -> str:
    """Return the passage's sentences that share the most words with the question, in text order.

    When those fill less than half of `max_chars` (a heading that matched, or
    no sentence that shares a word), the sentences after the first pick are
    added too, so the quote carries the passage's content.
    """
    question_words = _stems(question)
    sentences = split_sentences(text)
    if not sentences:
        return ""

    scored = [(len(question_words & _stems(sentence)), index) for index, sentence in enumerate(sentences)]
    ranked = sorted(scored, key=lambda item: (-item[0], item[1]))
    chosen: list[int] = []
    length = 0
    for score, index in ranked:
        if score == 0 and chosen:
            break
        if length + len(sentences[index]) > max_chars and chosen:
            break
        chosen.append(index)
        length += len(sentences[index])

    following = min(chosen) + 1
    while length < max_chars / 2 and following < len(sentences):
        if following not in chosen:
            if length + len(sentences[following]) > max_chars:
                break
            chosen.append(following)
            length += len(sentences[following])
        following += 1

    quote = " ".join(sentences[index] for index in sorted(chosen))
    if len(quote) > max_chars:
        quote = quote[: max_chars - 3].rstrip() + "..."
    return quote


def _label(hit: Hit) -> str:
    heading = " > ".join(hit.heading_path)
    title = hit.title or hit.source_uri
    return f"{title} ({heading})" if heading and heading != title else title


def compose_extractive(question: str, passages: list[Passage], max_chars: int) -> str:
    """Quote the most relevant sentences of each passage with its citation number."""
    if not passages:
        return "No passage in the collection answers this question."
    parts = []
    for passage in passages:
        quote = best_sentences(question, passage.text, max_chars)
        parts.append(f'[{passage.number}] {_label(passage.hit)}:\n    "{quote}"')
    return "\n".join(parts)


async def compose_with_llm(
    question: str, passages: list[Passage], *, url: str, model: str, api_key: str, timeout: float
) -> str:
    """Ask an OpenAI-compatible chat completions endpoint to answer from the numbered passages only."""
    register_secret(api_key)
    context = "\n\n".join(f"[{passage.number}] {_label(passage.hit)}\n{passage.text}" for passage in passages)
    body = {
        "model": model or "default",
        "temperature": 0,
        "messages": [
            {
                "role": "system",
                "content": "Answer the question using only the numbered passages. Cite passages as [n]. "
                "If they do not contain the answer, say so.",
            },
            {"role": "user", "content": f"Passages:\n{context}\n\nQuestion: {question}"},
        ],
    }
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    endpoint = url.rstrip("/") + "/chat/completions"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(endpoint, json=body, headers=headers) as response:
                if response.status != 200:
                    text = (await response.text())[:200]
                    raise StepFailed("compose", f"LLM endpoint {endpoint} returned HTTP {response.status}: {text}")
                payload = await response.json()
    except aiohttp.ClientError as exc:
        raise StepFailed("compose", f"LLM endpoint {endpoint} failed: {exc}") from exc

    try:
        return str(payload["choices"][0]["message"]["content"]).strip()
    except (KeyError, IndexError, TypeError) as exc:
        raise StepFailed("compose", f"LLM endpoint {endpoint} returned no choices[0].message.content") from exc

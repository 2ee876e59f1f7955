"""Data prep benchmarks: parse plus chunk throughput, and embedding throughput with agreement.

Baselines run in the same process on the same texts and cores. The first is
LangChain's RecursiveCharacterTextSplitter (langchain-text-splitters, the
`dev` extra) counting characters. The second is the same splitter counting
tokens of the model's tokenizer, which gives the same size guarantee as ours.
The third is sentence-transformers fp32 on torch.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from bench.harness import Result

CHUNK_TOKENS = 256
OVERLAP_TOKENS = 32
# LangChain counts characters; about 4 characters per token for English text.
CHARS_PER_TOKEN = 4


def _corpus() -> tuple[str, str]:
    """CPython's pydoc topics as plain text, and the same text as Markdown with `#` headings."""
    from pydoc_data.topics import topics

    text = "\n\n".join(topics[name] for name in sorted(topics))
    levels = {"*": "#", "=": "##", "-": "###", "~": "####"}
    markdown = re.sub(r"^(.+)\n([*=\-~])\2{2,}$", lambda m: f"{levels[m.group(2)]} {m.group(1)}", text, flags=re.M)
    return text, markdown


def _best_of(repeats: int, action) -> float:  # noqa: ANN001
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _token_splitter(language, max_tokens: int, specials: int):  # noqa: ANN001, ANN202
    """LangChain's splitter counting tokens of the same tokenizer, sized so chunks with special tokens fit.

    `from_huggingface_tokenizer` counts `tokenizer.tokenize(text)`, which
    leaves out [CLS] and [SEP], so its chunk size is the limit minus those.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter
    from transformers import PreTrainedTokenizerFast

    from continuum.services.dataprep.embedders import model_dir

    hf_tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(model_dir() / "tokenizer.json"))
    options = {"chunk_size": max_tokens - specials, "chunk_overlap": OVERLAP_TOKENS}
    if language:
        options["separators"] = RecursiveCharacterTextSplitter.get_separators_for_language(language)
    return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(hf_tokenizer, **options)


def _chunk_results(quick: bool) -> list[Result]:
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    from continuum.services.dataprep.chunking import Chunker
    from continuum.services.dataprep.cleaning import clean_document
    from continuum.services.dataprep.documents import RawDocument
    from continuum.services.dataprep.embedders import load_tokenizer
    from continuum.services.dataprep.parsers import parse

    tokenizer = load_tokenizer()
    chunker = Chunker(tokenizer, model_max_tokens=CHUNK_TOKENS)
    text, markdown = _corpus()
    copies = 1 if quick else 4
    repeats = 2 if quick else 3
    results = []
    for kind, body, suffix, language in (("text", text, "txt", None), ("markdown", markdown, "md", Language.MARKDOWN)):
        body = "\n\n".join([body] * copies)
        megabytes = len(body.encode()) / 1e6
        chunks: dict[str, list[str]] = {}

        def ours() -> None:
            raw = RawDocument(uri=f"bench.{suffix}", name=f"bench.{suffix}", body=body.encode())
            title, blocks = parse(raw)
            document = clean_document(raw.uri, title, blocks)
            spans = chunker.chunk(document, CHUNK_TOKENS, OVERLAP_TOKENS)
            chunks["ours"] = [document.text[span.start : span.end] for span in spans]

        size = CHUNK_TOKENS * CHARS_PER_TOKEN
        overlap = OVERLAP_TOKENS * CHARS_PER_TOKEN
        if language:
            splitter = RecursiveCharacterTextSplitter.from_language(language, chunk_size=size, chunk_overlap=overlap)
        else:
            splitter = RecursiveCharacterTextSplitter(chunk_size=size, chunk_overlap=overlap)
        token_splitter = _token_splitter(language, CHUNK_TOKENS, chunker.specials)

        ours_s = _best_of(repeats, ours)
        char_s = _best_of(repeats, lambda: chunks.__setitem__("chars", splitter.split_text(body)))
        # The token-counting baseline is slow, so one run is enough to compare.
        token_s = _best_of(1, lambda: chunks.__setitem__("tokens", token_splitter.split_text(body)))
        largest = {
            name: max(len(encoding.ids) for encoding in tokenizer.encode_batch(texts, add_special_tokens=True))
            for name, texts in chunks.items()
        }
        corpus = f"{megabytes:.2f} MB of CPython pydoc topics"
        ours_note = f"ours parses, cleans and chunks to <= {CHUNK_TOKENS} model tokens (largest {largest['ours']})"
        results.append(
            Result(
                name=f"parse+chunk {kind}",
                value=megabytes / ours_s,
                unit="MB/s",
                baseline_name="LangChain RecursiveCharacterTextSplitter",
                baseline=megabytes / char_s,
                goal=">= 2x",
                met=char_s / ours_s >= 2.0,
                notes=(
                    f"{corpus}; {ours_note}; the baseline splits at {size} characters without a tokenizer "
                    f"(largest chunk {largest['chars']} tokens)"
                ),
                extra={"largest_chunk_tokens": largest["ours"], "baseline_largest_chunk_tokens": largest["chars"]},
            )
        )
        results.append(
            Result(
                name=f"parse+chunk {kind}, token-counting baseline",
                value=megabytes / ours_s,
                unit="MB/s",
                baseline_name="LangChain from_huggingface_tokenizer",
                baseline=megabytes / token_s,
                goal=">= 2x",
                met=token_s / ours_s >= 2.0,
                notes=(
                    f"{corpus}; the baseline counts the same tokenizer's tokens with chunk size "
                    f"{CHUNK_TOKENS - chunker.specials} plus {chunker.specials} special tokens "
                    f"(largest chunk {largest['tokens']} tokens)"
                ),
                extra={"baseline_largest_chunk_tokens": largest["tokens"]},
            )
        )
    return results


def _embed_results(quick: bool) -> list[Result]:
    import torch

    from continuum.services.dataprep.embedders import OnnxEmbedder, SentenceTransformerEmbedder
    from continuum.services.dataprep.onnx_export import ensure_int8_model

    text, _ = _corpus()
    paragraphs = [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80]
    texts = paragraphs[: 128 if quick else 512]
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="continuum-bench-model-") as cache:
        candidate = OnnxEmbedder(ensure_int8_model(Path(cache)), threads=threads)
        reference = SentenceTransformerEmbedder(batch_size=32, threads=threads)
        candidate.encode(texts[:8])
        reference.encode(texts[:8])
        ours_s = _best_of(1 if quick else 2, lambda: candidate.encode(texts))
        base_s = _best_of(1 if quick else 2, lambda: reference.encode(texts))
        cosines = (candidate.encode(texts) * reference.encode(texts)).sum(axis=1)
    mean = float(cosines.mean())
    return [
        Result(
            name="embed chunks (int8 ONNX)",
            value=len(texts) / ours_s,
            unit="chunks/s",
            baseline_name="sentence-transformers fp32",
            baseline=len(texts) / base_s,
            goal=">= 3x, mean cosine >= 0.99",
            met=base_s / ours_s >= 3.0 and mean >= 0.99,
            notes=f"{len(texts)} pydoc paragraphs, {threads} threads each; mean cosine {mean:.4f}, min {float(cosines.min()):.4f}",
            extra={"mean_cosine": mean, "min_cosine": float(cosines.min())},
        )
    ]


async def run(quick: bool) -> list[Result]:
    return _chunk_results(quick) + _embed_results(quick)

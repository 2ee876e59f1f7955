"""The injection detector on the labelled corpus of the bastioncorpus package (MIT), as a regression floor.

The rules were written while reading this corpus, so the floors guard against
regressions; they do not measure how well the rules generalise (the benchmark
reports that on other sets too).
"""

from __future__ import annotations

import importlib.resources
import json

import pytest

from continuum.services.guardrails.detectors import InjectionDetector

bastioncorpus = pytest.importorskip("bastioncorpus")


def _rows() -> list[dict[str, str]]:
    text = importlib.resources.files("bastioncorpus").joinpath("corpus/injections.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _fires(detector: InjectionDetector, text: str) -> bool:
    return any(finding.score >= 0.5 for finding in detector.scan(text.replace("{canary}", "CANARY-7F3A")))


def test_bastioncorpus_benign_texts_pass() -> None:
    detector = InjectionDetector()
    flagged = [row["text"] for row in _rows() if row["label"] == "benign" and _fires(detector, row["text"])]

    assert flagged == []


def test_bastioncorpus_recall_above_floor() -> None:
    detector = InjectionDetector()
    malicious = [row for row in _rows() if row["label"] == "malicious"]
    caught = sum(_fires(detector, row["text"]) for row in malicious)

    assert len(malicious) >= 100
    assert caught / len(malicious) >= 0.85

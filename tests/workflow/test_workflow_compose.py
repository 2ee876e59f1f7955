"""Extractive answers: sentence selection, quoting and citation markers."""

from __future__ import annotations

from continuum.services.workflow.compose import Passage, best_sentences, compose_extractive, keywords, split_sentences
from continuum.shared.schemas import Hit

WITH_TEXT = (
    "The with statement is used to wrap the execution of a block with methods defined by a context manager. "
    "The context expression is evaluated to obtain a context manager. "
    "The context manager's __enter__() method is invoked. "
    "The suite is executed. "
    "The context manager's __exit__() method is invoked when the suite finishes."
)


def test_keywords_keep_dunder_names():
    assert {"__enter__", "__exit__", "statement"} <= keywords("How does the with statement call __enter__ and __exit__?")
    assert "the" not in keywords("the with statement")


def test_split_sentences_on_terminal_punctuation():
    sentences = split_sentences("First one. Second one! Third? lower case stays. End.")

    assert sentences == ["First one.", "Second one!", "Third? lower case stays.", "End."]


def test_best_sentences_picks_matching_sentences_in_order():
    quote = best_sentences("How does with call __enter__ and __exit__?", WITH_TEXT, max_chars=200)

    assert "__enter__() method is invoked" in quote
    assert "__exit__() method is invoked" in quote
    assert quote.index("__enter__") < quote.index("__exit__")
    assert "The suite is executed." not in quote


def test_best_sentences_respects_max_chars():
    quote = best_sentences("with statement context manager suite", WITH_TEXT, max_chars=80)

    assert len(quote) <= 80


def test_compose_extractive_cites_each_passage():
    hits = [
        Hit(id="c1", score=0.9, text=WITH_TEXT, source_uri="pydoc://topics/with", title="with", heading_path=["with"]),
        Hit(id="c2", score=0.5, text="Context managers define __enter__ and __exit__.", source_uri="pydoc://topics/context-managers", title="context-managers"),
    ]
    passages = [Passage(number=index + 1, hit=hit, text=hit.text) for index, hit in enumerate(hits)]

    answer = compose_extractive("What do __enter__ and __exit__ do?", passages, max_chars=300)

    assert answer.startswith("[1] with")
    assert "[2] context-managers" in answer
    assert '"Context managers define __enter__ and __exit__."' in answer


def test_compose_extractive_without_passages_says_so():
    assert "No passage" in compose_extractive("anything", [], max_chars=100)


def test_best_sentences_adds_content_after_matching_heading():
    text = "Rotating credentials\n\n1. Create a new key. 2. Deploy it to every service. 3. Remove the old key."

    quote = best_sentences("How do I rotate keys?", text, max_chars=200)

    assert quote.startswith("Rotating credentials")
    assert "Create a new key." in quote
    assert "Remove the old key." in quote

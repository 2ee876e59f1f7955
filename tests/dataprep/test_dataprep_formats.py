"""Parsers and cleaning on real files of every supported format."""

from __future__ import annotations

import json

import pytest

from continuum.services.dataprep.cleaning import clean_document, normalize_text
from continuum.services.dataprep.documents import RawDocument
from continuum.services.dataprep.errors import ParseError
from continuum.services.dataprep.parsers import detect_format, parse


def raw(name: str, data: bytes | str) -> RawDocument:
    body = data.encode() if isinstance(data, str) else data
    return RawDocument(uri=f"file:///docs/{name}", name=name, body=body)


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def test_markdown_headings_paragraphs_code_parsed():
    text = "---\nlayout: post\n---\n# Guide\n\nIntro text.\n\n## Install\n\nRun pip.\n\n```\n# not a heading\n```\n\nSetext\n------\n\nLast."
    title, blocks = parse(raw("guide.md", text))
    assert title == "Guide"
    kinds = [(block.kind, block.text, block.level) for block in blocks]
    assert ("heading", "Install", 2) in kinds
    assert ("code", "# not a heading", 0) in kinds
    assert ("heading", "Setext", 2) in kinds
    assert not any("layout" in block.text for block in blocks)


def test_html_main_text_drops_scripts_and_navigation():
    html = """<html><head><title>Page</title><style>p{color:red}</style></head><body>
    <nav><a href="/">Home</a> menu links</nav>
    <main><h1>Heading</h1><p>Main <b>bold</b> text.</p><script>alert('x')</script>
    <ul><li>first item</li><li>second item</li></ul></main>
    <footer>Footer text</footer></body></html>"""
    title, blocks = parse(raw("page.html", html))
    texts = [block.text for block in blocks]
    assert title == "Page"
    assert "Main bold text." in texts
    assert "first item" in texts
    assert blocks[0].kind == "heading"
    joined = " ".join(texts)
    assert "alert" not in joined
    assert "menu links" not in joined
    assert "Footer" not in joined
    assert "color" not in joined


def test_pdf_text_layer_extracted_without_running_headers():
    pages = [f"ACME report header\nPage body number {n} talks about topic {n}." for n in range(1, 5)]
    title, blocks = parse(raw("report.pdf", make_pdf(pages)))
    joined = "\n".join(block.text for block in blocks)
    for n in range(1, 5):
        assert f"topic {n}" in joined
    assert "ACME report header" not in joined
    assert title


def test_pdf_detected_by_magic_bytes_without_suffix():
    assert detect_format(raw("report", make_pdf(["hello"]))) == "pdf"


def test_corrupt_pdf_raises_parse_error():
    with pytest.raises(ParseError, match="not a readable PDF"):
        parse(raw("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog garbage"))


def test_binary_file_raises_parse_error():
    with pytest.raises(ParseError, match="binary data"):
        parse(raw("blob.bin", bytes(range(256)) * 4))


def test_non_utf8_text_raises_parse_error():
    with pytest.raises(ParseError, match="not valid UTF-8"):
        parse(raw("latin.txt", "café".encode("latin-1")))


def test_json_named_fields_extracted():
    document = [{"title": "First", "body": {"text": "Nested body."}, "other": "skip me"}, {"title": "Second", "body": {"text": "More."}}]
    title, blocks = parse(raw("records.json", json.dumps(document)), ["body.text"])
    texts = [block.text for block in blocks]
    assert texts == ["First", "Nested body.", "Second", "More."]
    assert "skip me" not in texts


def test_jsonl_default_fields_and_bad_line():
    lines = "\n".join(json.dumps({"text": f"record {n}"}) for n in range(3))
    _, blocks = parse(raw("data.jsonl", lines))
    assert [block.text for block in blocks] == ["record 0", "record 1", "record 2"]
    with pytest.raises(ParseError, match="line 2"):
        parse(raw("bad.jsonl", '{"text": "ok"}\n{broken'))


def test_json_without_text_fields_raises_parse_error():
    with pytest.raises(ParseError, match="no text in the JSON fields"):
        parse(raw("empty.json", json.dumps({"id": 1})))


def test_pydoc_topic_headings_parsed():
    from pydoc_data.topics import topics

    document = RawDocument(uri="pydoc://topics/class", name="class.txt", body=topics["class"].encode(), format_hint="pydoc")
    title, blocks = parse(document)
    assert title == "Class definitions"
    assert blocks[0].kind == "heading"
    assert any(block.kind == "code" for block in blocks)


def test_cleaning_normalizes_and_removes_duplicates():
    _, blocks = parse(raw("notes.txt", "ﬁne\u00a0\u00a0text\u200b here\n\nRepeated paragraph.\n\n12\n\nRepeated paragraph.\n\nLast one."))
    document = clean_document("file:///notes.txt", "notes", blocks)
    assert document.text == "fine text here\n\nRepeated paragraph.\n\nLast one."
    for span in document.spans:
        assert document.text[span.start : span.end] == span.block.text


def test_normalize_keeps_code_layout():
    assert normalize_text("def f():\n    return 1   ", keep_layout=True) == "def f():\n    return 1"

"""Parsers from raw bytes to blocks: text, Markdown, HTML, PDF, JSON and JSON Lines.

Every parser raises ParseError naming the document and the reason for the
failures it expects. The pipeline turns any other exception into a
ParseError too, so one bad file fails only itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from continuum.services.dataprep.cleaning import remove_repeated_lines
from continuum.services.dataprep.documents import Block, RawDocument
from continuum.services.dataprep.errors import ParseError

FORMAT_BY_SUFFIX = {
    ".txt": "text", ".text": "text", ".log": "text", ".rst": "text", ".csv": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".json": "json",
    ".jsonl": "jsonl", ".ndjson": "jsonl",
}
FORMAT_BY_CONTENT_TYPE = {
    "text/plain": "text", "text/markdown": "markdown", "text/html": "html",
    "application/pdf": "pdf", "application/json": "json", "application/x-ndjson": "jsonl",
}
DEFAULT_JSON_FIELDS = ("text", "content", "body")
_TITLE_FIELDS = ("title", "name")
_SNIFF_BYTES = 8192


def detect_format(raw: RawDocument) -> str:
    """Pick the parser from the hint, the file suffix, the content type, then the first bytes."""
    if raw.format_hint:
        return raw.format_hint
    suffix = PurePosixPath(raw.name).suffix.lower()
    if suffix in FORMAT_BY_SUFFIX:
        return FORMAT_BY_SUFFIX[suffix]
    content_type = raw.content_type.split(";")[0].strip().lower()
    if content_type in FORMAT_BY_CONTENT_TYPE:
        return FORMAT_BY_CONTENT_TYPE[content_type]
    head = raw.open().read(_SNIFF_BYTES)
    if head.startswith(b"%PDF-"):
        return "pdf"
    lowered = head.lstrip()[:64].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def parse(raw: RawDocument, fields: list[str] | None = None) -> tuple[str, list[Block]]:
    """Parse a raw document into (title, blocks)."""
    kind = detect_format(raw)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ParseError(f"{raw.uri}: unsupported format {kind!r}", document=raw.uri)
    title, blocks = parser(raw, list(fields or ()))
    return raw.title or title, blocks


def decode_text(raw: RawDocument) -> str:
    """Decode UTF-8 text, rejecting binary data (NUL bytes) and other encodings."""
    data = raw.read()
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise ParseError(f"{raw.uri}: binary data, not a text document; remove it or convert it to text", document=raw.uri)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            f"{raw.uri}: not valid UTF-8 (byte {exc.start}); convert the file to UTF-8", document=raw.uri
        ) from exc


# Text and Markdown ----------------------------------------------------------


def _paragraphs(text: str) -> list[Block]:
    return [Block("paragraph", part) for part in re.split(r"\n[ \t]*\n", text) if part.strip()]


def parse_text(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    return PurePosixPath(raw.name).stem, _paragraphs(decode_text(raw))


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")


def parse_markdown_text(text: str) -> tuple[str, list[Block]]:
    """Split Markdown into headings, paragraphs and fenced code blocks (front matter is dropped)."""
    lines = text.split("\n")
    if lines and lines[0].strip() == "---":
        closing = next((index for index, line in enumerate(lines[1:], start=1) if line.strip() == "---"), None)
        if closing is not None:
            lines = lines[closing + 1 :]
    blocks: list[Block] = []
    paragraph: list[str] = []
    fence: str | None = None
    code: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("paragraph", "\n".join(paragraph)))
            paragraph.clear()

    for line in lines:
        if fence is not None:
            if line.strip().startswith(fence):
                blocks.append(Block("code", "\n".join(code)))
                fence, code = None, []
            else:
                code.append(line)
            continue
        fence_match = _FENCE.match(line)
        if fence_match:
            flush()
            fence = fence_match.group(1)
            continue
        heading = _ATX.match(line)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2) or "", len(heading.group(1))))
            continue
        setext = _SETEXT.match(line)
        if setext and len(paragraph) == 1:
            blocks.append(Block("heading", paragraph.pop(), 1 if setext.group(1)[0] == "=" else 2))
            continue
        if not line.strip():
            flush()
            continue
        paragraph.append(line)
    flush()
    if code:
        blocks.append(Block("code", "\n".join(code)))
    title = next((block.text for block in blocks if block.kind == "heading" and block.level == 1), "")
    return title, blocks


def parse_markdown(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    title, blocks = parse_markdown_text(decode_text(raw))
    return title or PurePosixPath(raw.name).stem, blocks


# pydoc topics (reStructuredText rendered as plain text) ----------------------

_UNDERLINE_LEVELS = {"*": 1, "=": 2, "-": 3, "~": 4, "^": 5}
_UNDERLINE = re.compile(r"^([*=\-~^])\1{2,}$")


def parse_underlined_text(text: str) -> list[Block]:
    """Split text whose headings are underlined (`Title` then `*****`), as in `pydoc_data.topics`.

    Indented paragraphs are code or grammar examples and keep their layout.
    """
    blocks: list[Block] = []
    for part in re.split(r"\n[ \t]*\n", text):
        lines = part.rstrip().split("\n")
        if not part.strip():
            continue
        underline = _UNDERLINE.match(lines[-1].strip()) if len(lines) >= 2 else None
        if underline and len(lines) == 2 and lines[0].strip():
            blocks.append(Block("heading", lines[0].strip(), _UNDERLINE_LEVELS[underline.group(1)]))
        elif part.startswith((" ", "\t")):
            blocks.append(Block("code", part))
        else:
            blocks.append(Block("paragraph", part))
    return blocks


def parse_pydoc(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    blocks = parse_underlined_text(decode_text(raw))
    title = next((block.text for block in blocks if block.kind == "heading"), "")
    return title, blocks


# HTML -----------------------------------------------------------------------

_DROP_TAGS = (
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "svg", "iframe", "button", "select", "input", "textarea", "canvas", "object", "embed",
)
_DROP_ROLES = ("navigation", "banner", "contentinfo", "complementary", "search", "menu")
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_LEAF_TAGS = {"p", "pre", "li", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption", "summary", "address"}
_CONTAINER_TAGS = {
    "div", "section", "article", "main", "body", "ul", "ol", "dl", "table", "thead", "tbody", "tfoot", "tr",
    "figure", "details", "fieldset", "html", "center", "hr",
} | _LEAF_TAGS | set(_HEADING_TAGS)
_BLOCK_SELECTOR = ",".join(sorted(_CONTAINER_TAGS - {"html", "body"}))


def parse_html_text(html: str, uri: str = "") -> tuple[str, list[Block]]:
    """Extract the main text of an HTML page: headings and paragraphs, no scripts, styles or navigation."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    for selector in (*_DROP_TAGS, *(f'[role="{role}"]' for role in _DROP_ROLES), '[aria-hidden="true"]'):
        for node in tree.css(selector):
            node.decompose()
    root = tree.css_first("main") or tree.css_first("article") or tree.body or tree.root
    blocks: list[Block] = []
    if root is not None:
        _walk_html(root, blocks)
    if not title:
        title = next((block.text for block in blocks if block.kind == "heading"), "")
    return title, blocks


def _walk_html(node: Any, blocks: list[Block]) -> None:
    inline: list[str] = []

    def flush() -> None:
        text = "".join(inline).strip()
        if text:
            blocks.append(Block("paragraph", text))
        inline.clear()

    for child in node.iter(include_text=True):
        tag = child.tag
        if tag == "-text":
            inline.append(child.text_content or "")
        elif tag in _HEADING_TAGS:
            flush()
            blocks.append(Block("heading", child.text(deep=True, separator=" ").strip(), _HEADING_TAGS[tag]))
        elif tag == "pre":
            flush()
            blocks.append(Block("code", child.text(deep=True)))
        elif tag in _LEAF_TAGS and child.css_first(_BLOCK_SELECTOR) is None:
            flush()
            blocks.append(Block("paragraph", child.text(deep=True, separator="")))
        elif tag in _CONTAINER_TAGS:
            flush()
            _walk_html(child, blocks)
        elif tag == "br":
            inline.append("\n")
        elif tag not in ("-comment", "head", "title", "meta", "link"):
            inline.append(child.text(deep=True, separator=""))
    flush()


def parse_html(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    return parse_html_text(decode_text(raw), raw.uri)


# PDF ------------------------------------------------------------------------


def parse_pdf(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    """Extract the text layer page by page; running headers and footers are dropped."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(raw.open(), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError(f"{raw.uri}: the PDF is encrypted; decrypt it before ingesting", document=raw.uri)
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = str(info.title) if info and info.title else ""
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ParseError(f"{raw.uri}: not a readable PDF ({type(exc).__name__}: {exc})", document=raw.uri) from exc
    if not any(page.strip() for page in pages):
        raise ParseError(
            f"{raw.uri}: the PDF has no text layer (a scan?); run OCR on it before ingesting", document=raw.uri
        )
    blocks: list[Block] = []
    for page in remove_repeated_lines(pages):
        blocks.extend(_paragraphs(page))
    if not title and blocks:
        title = blocks[0].text.split("\n")[0][:200]
    return title or PurePosixPath(raw.name).stem, blocks


# JSON and JSON Lines --------------------------------------------------------


def _field_value(record: Any, path: str) -> Any:
    value = record
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _record_blocks(record: Any, fields: list[str]) -> list[Block]:
    if isinstance(record, str):
        return [Block("paragraph", record)]
    if not isinstance(record, dict):
        return []
    names = fields or list(DEFAULT_JSON_FIELDS)
    blocks: list[Block] = []
    title = next((record[key] for key in _TITLE_FIELDS if isinstance(record.get(key), str)), "")
    if title:
        blocks.append(Block("heading", title, 2))
    for name in names:
        value = _field_value(record, name)
        if isinstance(value, list):
            value = "\n".join(str(item) for item in value if item is not None)
        if isinstance(value, (str, int, float)) and str(value).strip():
            blocks.extend(_paragraphs(str(value)))
    return blocks


def _json_records_blocks(raw: RawDocument, records: list[Any], fields: list[str]) -> list[Block]:
    blocks: list[Block] = []
    for record in records:
        blocks.extend(_record_blocks(record, fields))
    if not any(block.kind != "heading" for block in blocks):
        wanted = ", ".join(fields or DEFAULT_JSON_FIELDS)
        raise ParseError(f"{raw.uri}: no text in the JSON fields {wanted}; name the fields that hold text", document=raw.uri)
    return blocks


def parse_json(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    try:
        document = json.loads(decode_text(raw))
    except json.JSONDecodeError as exc:
        raise ParseError(f"{raw.uri}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", document=raw.uri) from exc
    records = document if isinstance(document, list) else [document]
    return PurePosixPath(raw.name).stem, _json_records_blocks(raw, records, fields)


def parse_jsonl(raw: RawDocument, fields: list[str]) -> tuple[str, list[Block]]:
    records: list[Any] = []
    for number, line in enumerate(decode_text(raw).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ParseError(f"{raw.uri}: invalid JSON on line {number}: {exc.msg}", document=raw.uri) from exc
    return PurePosixPath(raw.name).stem, _json_records_blocks(raw, records, fields)


_PARSERS: dict[str, Callable[[RawDocument, list[str]], tuple[str, list[Block]]]] = {
    "text": parse_text,
    "markdown": parse_markdown,
    "html": parse_html,
    "pdf": parse_pdf,
    "json": parse_json,
    "jsonl": parse_jsonl,
    "pydoc": parse_pydoc,
}

"""Translate structured filters into LanceDB `where` expressions without ever passing caller SQL through.

A filter names a column from `COLUMNS` or `metadata.<key>` and compares it
with a literal. Column names come from a fixed table, metadata keys must be
names (letters, digits, `_` and `-`), and every string literal is quoted
with its single quotes doubled, so a value can only ever be a value.
Anything else is rejected with a FilterError that names the filter.
"""

from __future__ import annotations

import math
import re
from typing import Any

from continuum.services.vectordb.errors import FilterError
from continuum.shared.schemas import Filter

# Filterable columns and their kind.
COLUMNS: dict[str, str] = {
    "id": "string",
    "document_id": "string",
    "source_uri": "string",
    "title": "string",
    "doc_checksum": "string",
    "job_id": "string",
    "chunk_index": "number",
    "token_count": "number",
    "heading_path": "list",
}

_METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COMPARISONS = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
MAX_IN_VALUES = 1000
MAX_STRING_LENGTH = 4096


def to_where(filters: list[Filter]) -> str | None:
    """Return the AND of all filters as a LanceDB SQL expression, or None when there are none."""
    if not filters:
        return None
    return " AND ".join(f"({_translate(index, item)})" for index, item in enumerate(filters))


def _translate(index: int, item: Filter) -> str:
    where = f"filters[{index}]"
    if item.field.startswith("metadata."):
        return _metadata_condition(where, item)
    kind = COLUMNS.get(item.field)
    if kind is None:
        raise FilterError(
            f"{where}: unknown field {item.field!r}; use one of {', '.join(sorted(COLUMNS))} or metadata.<key>",
            field=f"{where}.field",
        )
    if kind == "list":
        if item.op != "contains":
            raise FilterError(f"{where}: field {item.field!r} supports only op 'contains', got {item.op!r}", field=f"{where}.op")
        return f"array_has({item.field}, {_string(where, item.value)})"
    if item.op == "contains":
        if kind != "string":
            raise FilterError(f"{where}: op 'contains' needs a text field, {item.field!r} is numeric", field=f"{where}.op")
        return f"strpos({item.field}, {_string(where, item.value)}) > 0"
    literal = _string if kind == "string" else _number
    if item.op == "in":
        return f"{item.field} IN ({_literal_list(where, item.value, literal)})"
    return f"{item.field} {_COMPARISONS[item.op]} {literal(where, item.value)}"


def _metadata_condition(where: str, item: Filter) -> str:
    key = item.field.removeprefix("metadata.")
    if not _METADATA_KEY.fullmatch(key):
        raise FilterError(
            f"{where}: invalid metadata key {key!r}; use 1-64 letters, digits, '_' or '-'",
            field=f"{where}.field",
        )
    if item.op == "contains":
        return f"json_array_contains(metadata, '$.{key}', {_string(where, item.value)})"

    sample = item.value[0] if item.op == "in" and isinstance(item.value, list) and item.value else item.value
    getter, literal = _json_getter(where, sample)
    column = f"{getter}(metadata, '{key}')"
    if item.op == "in":
        return f"{column} IN ({_literal_list(where, item.value, literal)})"
    if getter == "json_get_bool" and item.op not in ("eq", "ne"):
        raise FilterError(f"{where}: a boolean supports only 'eq' and 'ne', got {item.op!r}", field=f"{where}.op")
    return f"{column} {_COMPARISONS[item.op]} {literal(where, item.value)}"


def _json_getter(where: str, value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "json_get_bool", _boolean
    if isinstance(value, int):
        return "json_get_int", _number
    if isinstance(value, float):
        return "json_get_float", _number
    if isinstance(value, str):
        return "json_get_string", _string
    raise FilterError(
        f"{where}: invalid value {value!r}; a metadata filter compares with a string, number or boolean",
        field=f"{where}.value",
    )


def _literal_list(where: str, values: Any, literal: Any) -> str:
    if not isinstance(values, list) or not values:
        raise FilterError(f"{where}: op 'in' needs a non-empty list of values, got {values!r}", field=f"{where}.value")
    if len(values) > MAX_IN_VALUES:
        raise FilterError(f"{where}: op 'in' takes at most {MAX_IN_VALUES} values, got {len(values)}", field=f"{where}.value")
    return ", ".join(literal(where, value) for value in values)


def _string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FilterError(f"{where}: expected a string value, got {value!r}", field=f"{where}.value")
    if len(value) > MAX_STRING_LENGTH:
        raise FilterError(f"{where}: value is {len(value)} characters, the maximum is {MAX_STRING_LENGTH}", field=f"{where}.value")
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise FilterError(f"{where}: value {value!r} contains control characters", field=f"{where}.value")
    return "'" + value.replace("'", "''") + "'"


def _number(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        raise FilterError(f"{where}: expected a finite number, got {value!r}", field=f"{where}.value")
    return repr(value)


def _boolean(where: str, value: Any) -> str:
    if not isinstance(value, bool):
        raise FilterError(f"{where}: expected a boolean, got {value!r}", field=f"{where}.value")
    return "true" if value else "false"

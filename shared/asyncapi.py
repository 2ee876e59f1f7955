"""Generate the AsyncAPI 3 document and the subject catalog page from `catalog`."""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from continuum.shared import __version__
from continuum.shared.catalog import CHANNELS, Channel
from continuum.shared.topology import STREAMS

_SCHEMA_REF = "#/components/schemas/"


def _message_types() -> list[type[Any]]:
    found: dict[str, type[Any]] = {}
    for channel in CHANNELS:
        for schema in (channel.message, channel.reply):
            if schema is not None:
                found[schema.__name__] = schema
    return [found[name] for name in sorted(found)]


def _message_name(schema: type[Any]) -> str:
    return schema.__name__


def _message_object(schema: type[Any] | None, title: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "title": title,
        "contentType": "application/json",
        "headers": {"$ref": "#/components/schemas/CloudEventHeaders"},
    }
    if schema is None:
        message["payload"] = {"description": "Any JSON value; the receiver defines its shape."}
    else:
        message["name"] = getattr(schema, "CE_TYPE", "") or schema.__name__
        message["payload"] = {"$ref": f"{_SCHEMA_REF}{schema.__name__}"}
    return message


def _channel_document(channel: Channel) -> dict[str, Any]:
    parameters = {
        part.strip("{}"): {"description": "A name token: letters, digits, '-' and '_'."}
        for part in channel.subject.split(".")
        if part.startswith("{")
    }
    document: dict[str, Any] = {
        "address": channel.subject,
        "description": f"{channel.summary} Producers: {channel.producers}. Consumers: {channel.consumers}."
        + (f" Stream: {channel.stream}." if channel.stream else " Core NATS, no stream."),
        "messages": {"request" if channel.kind == "request" else "event": _message_object(channel.message, channel.name)},
    }
    if channel.reply is not None:
        document["messages"]["reply"] = _message_object(channel.reply, f"{channel.name} reply")
    if parameters:
        document["parameters"] = parameters
    return document


def _operation(channel: Channel) -> dict[str, Any]:
    key = "request" if channel.kind == "request" else "event"
    operation: dict[str, Any] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{channel.name}"},
        "summary": channel.summary,
        "messages": [{"$ref": f"#/channels/{channel.name}/messages/{key}"}],
    }
    if channel.reply is not None:
        operation["reply"] = {
            "channel": {"$ref": f"#/channels/{channel.name}"},
            "messages": [{"$ref": f"#/channels/{channel.name}/messages/reply"}],
        }
    return operation


def build_document() -> dict[str, Any]:
    """Return the AsyncAPI 3.0 document as plain data."""
    _, components = msgspec.json.schema_components(_message_types(), ref_template=_SCHEMA_REF + "{name}")
    components["CloudEventHeaders"] = {
        "type": "object",
        "description": "CloudEvents 1.0 binary content mode. All optional on input: missing ones get defaults.",
        "properties": {
            "ce-specversion": {"type": "string", "const": "1.0"},
            "ce-id": {"type": "string", "description": "Event id; equals Nats-Msg-Id for JetStream de-duplication."},
            "ce-source": {"type": "string"},
            "ce-type": {"type": "string", "description": "Schema name and version, e.g. continuum.telemetry.v1."},
            "ce-time": {"type": "string", "format": "date-time"},
            "content-type": {"type": "string", "const": "application/json"},
            "Nats-Msg-Id": {"type": "string"},
            "traceparent": {"type": "string", "description": "W3C trace context."},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Continuum",
            "version": __version__,
            "description": "Subjects of the Continuum platform. Generated from continuum.shared.catalog; do not edit.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:4222", "protocol": "nats", "description": "`continuum up` on one machine."}
        },
        "channels": {channel.name: _channel_document(channel) for channel in CHANNELS},
        "operations": {f"{channel.name}Receive": _operation(channel) for channel in CHANNELS},
        "components": {"schemas": dict(sorted(components.items()))},
    }


def render_asyncapi() -> str:
    return yaml.safe_dump(build_document(), sort_keys=False, width=100, allow_unicode=True)


def render_subjects_page() -> str:
    """Return docs/subjects.md: the catalog table and the streams with their limits."""
    lines = [
        "# Subject catalog",
        "",
        "Generated from `continuum.shared.catalog` and `continuum.shared.topology` by",
        "`continuum docs generate`; do not edit by hand. The machine-readable form is",
        "[asyncapi.yaml](asyncapi.yaml) (AsyncAPI 3.0). `{name}` tokens accept letters,",
        "digits, `-` and `_` only.",
        "",
        "| subject | kind | stream | producers | consumers | schema | reply |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for channel in CHANNELS:
        schema = f"`{channel.message.__name__}`" if channel.message else "any JSON"
        reply = f"`{channel.reply.__name__}`" if channel.reply else ""
        lines.append(
            f"| `{channel.subject}` | {channel.kind} | {channel.stream or 'core NATS'} | {channel.producers} | "
            f"{channel.consumers} | {schema} | {reply} |"
        )
    lines += [
        "",
        "## Streams",
        "",
        "| stream | subjects | retention | max age | max msgs per subject | duplicate window |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for stream in STREAMS:
        window = f"{stream.duplicate_window:.0f} s" if stream.duplicate_window else "from config (120 s)"
        per_subject = str(stream.max_msgs_per_subject) if stream.max_msgs_per_subject > 0 else "unlimited"
        lines.append(
            f"| {stream.name} | {', '.join(f'`{s}`' for s in stream.subjects)} | {stream.retention} | "
            f"{stream.max_age / 3600:.0f} h | {per_subject} | {window} |"
        )
    return "\n".join(lines) + "\n"

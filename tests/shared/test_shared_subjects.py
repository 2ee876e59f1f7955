"""Subject builders, parsers and name validation."""

from __future__ import annotations

import pytest

from continuum.shared import subjects
from continuum.shared.errors import SubjectError

BAD_NAMES = ["", "a.b", "a*", "a>", "has space", "tab\t", "ünïcode", "x" * 129]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_validate_name_rejects_bad_token(name):
    with pytest.raises(SubjectError):
        subjects.validate_name(name, kind="workload name")


def test_validate_name_error_names_value_and_fix():
    with pytest.raises(SubjectError) as caught:
        subjects.function("my.func")

    message = str(caught.value)
    assert "function name" in message
    assert "'my.func'" in message
    assert "letters, digits" in message


@pytest.mark.parametrize("name", ["edge-1", "EDGE_2", "a", "0", "x" * 128])
def test_validate_name_accepts_valid_token(name):
    assert subjects.validate_name(name) == name


def test_reserved_node_id_rejected():
    with pytest.raises(SubjectError, match="reserved"):
        subjects.placement("failed")


@pytest.mark.parametrize(
    ("subject", "kind", "tokens"),
    [
        (subjects.telemetry("n1"), "telemetry", ("n1",)),
        (subjects.node_lifecycle("n1"), "node_lifecycle", ("n1",)),
        (subjects.placement("n1"), "placement", ("n1",)),
        (subjects.PLACEMENT_FAILED, "placement_failed", ()),
        (subjects.workload_status("w"), "workload_status", ("w",)),
        (subjects.agent_ping("n1"), "agent_ping", ("n1",)),
        (subjects.function("f"), "function", ("f",)),
        (subjects.INGEST, "ingest", ()),
        (subjects.ingest_status("job1"), "ingest_status", ("job1",)),
        (subjects.chunks("docs"), "chunks", ("docs",)),
        (subjects.EMBED, "embed", ()),
        (subjects.guard_in("chat"), "guard_in", ("chat",)),
        (subjects.guard_out("chat"), "guard_out", ("chat",)),
        (subjects.guard_blocked("chat"), "guard_blocked", ("chat",)),
        (subjects.hook("github", "push"), "hook", ("github", "push")),
        (subjects.dlq("CHUNKS"), "dlq", ("CHUNKS",)),
        (subjects.api("deploy"), "api", ("deploy",)),
        (subjects.vector("query"), "vector", ("query",)),
        (subjects.guard("check"), "guard", ("check",)),
        (subjects.rag("ask"), "rag", ("ask",)),
    ],
)
def test_parse_inverts_builder(subject, kind, tokens):
    parsed = subjects.parse(subject)

    assert parsed.kind == kind
    assert parsed.tokens == tokens


def test_hook_event_with_dots_is_sanitized():
    assert subjects.hook("stripe", "invoice.paid") == "ctm.hook.stripe.invoice_paid"


@pytest.mark.parametrize("subject", ["other.telemetry.n1", "ctm.unknown.x", "ctm.telemetry.a.b", "ctm.telemetry.*"])
def test_parse_rejects_foreign_subject(subject):
    with pytest.raises(SubjectError):
        subjects.parse(subject)


def test_node_id_of_reads_placement_subject():
    assert subjects.node_id_of("ctm.placement.edge-7") == "edge-7"
    with pytest.raises(SubjectError):
        subjects.node_id_of(subjects.PLACEMENT_FAILED)

"""Settings of the guardrails service: the `[guardrails]` table and `CONTINUUM_GUARDRAILS_*` variables."""

from __future__ import annotations

import msgspec

from continuum.shared.schemas.guard import Stage


class GuardrailsSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Policy sources, and the policy and stage that stream mode uses for messages that name none."""

    # Folders of extra policy files (YAML, TOML or JSON), loaded after the built-in ones.
    policy_dirs: list[str] = msgspec.field(default_factory=list)
    builtin_policies: bool = True
    # Follow the `ctm-guard-policies` bucket for run-time policy updates.
    watch_bucket: bool = True
    stream_mode: bool = True
    stream_policy: str = "default"
    stream_stage: Stage = "input"
    # Messages checked at once per process in stream mode.
    concurrency: int = 16

"""Guardrails: PII, secrets, prompt injection and policy checks on `ctm.guard.check` and in stream mode."""

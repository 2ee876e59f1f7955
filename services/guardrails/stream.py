"""Stream mode: guard `ctm.guard.in.<topic>` and republish to `ctm.guard.out.<topic>` or `ctm.guard.blocked.<topic>`.

A message is a JSON string, or a JSON object whose `text` field is checked;
other fields pass through. Allowed and redacted messages go to the out
subject, redacted ones with the placeholders in `text`. Blocked ones go to
the blocked subject as a GuardedPayload with the findings, and every block
also publishes a GuardAudit on `ctm.guard.audit.<topic>`. The policy and
stage come from the `Ctm-Guard-Policy` and `Ctm-Guard-Stage` headers, else
from the object's `policy` and `stage` fields, else from the settings.
Every publish uses an id derived from the input's event id, so a redelivery
never stores a second copy. Anything that cannot be checked goes to the
dead-letter subject.
"""

from __future__ import annotations

import logging
from typing import Any, get_args

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from continuum.services.guardrails import engine
from continuum.services.guardrails.settings import GuardrailsSettings
from continuum.services.guardrails.store import PolicyStore
from continuum.shared import bus, subjects
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import PermanentError
from continuum.shared.schemas.guard import GuardAudit, GuardedPayload, Stage

logger = logging.getLogger(__name__)

POLICY_HEADER = "Ctm-Guard-Policy"
STAGE_HEADER = "Ctm-Guard-Stage"
VERDICT_HEADER = "Ctm-Guard-Verdict"
STAGES = get_args(Stage)


class StreamGuard:
    """The handler the `guardrails` durable consumer calls for each message."""

    def __init__(self, js: JetStreamContext, store: PolicyStore, settings: GuardrailsSettings, *, source: str) -> None:
        self.js = js
        self.store = store
        self.settings = settings
        self.source = source

    async def handle(self, event: CloudEvent[Any], msg: Msg) -> None:
        topic = subjects.parse(msg.subject).tokens[0]
        payload = event.data
        text = _text_of(payload)
        policy_name, stage = self._choose(payload, event.headers)
        policy = self.store.get(policy_name)
        if policy is None:
            raise PermanentError(f"unknown guard policy {policy_name!r}; known: {', '.join(self.store.names())}")

        result = engine.check(policy, text, stage)
        logger.debug("checked %s: %s with %d findings", msg.subject, result.verdict, len(result.findings))
        if result.verdict == "block":
            await self._publish_block(topic, event, payload, result, policy_name, stage)
            return
        output = payload
        if result.verdict == "redact":
            output = result.redacted_text if isinstance(payload, str) else {**payload, "text": result.redacted_text}
        await bus.publish(
            self.js,
            subjects.guard_out(topic),
            output,
            source=self.source,
            event_id=f"{event.id}-out",
            headers={"ce-type": event.type, VERDICT_HEADER: result.verdict},
        )

    def _choose(self, payload: Any, headers: dict[str, str]) -> tuple[str, Stage]:
        fields = payload if isinstance(payload, dict) else {}
        policy = headers.get(POLICY_HEADER) or fields.get("policy") or self.settings.stream_policy
        stage = headers.get(STAGE_HEADER) or fields.get("stage") or self.settings.stream_stage
        if not isinstance(policy, str):
            raise PermanentError(f"invalid policy {policy!r}: expected a policy name")
        if stage not in STAGES:
            raise PermanentError(f"invalid stage {stage!r}: expected one of {', '.join(STAGES)}")
        return policy, stage

    async def _publish_block(
        self, topic: str, event: CloudEvent[Any], payload: Any, result: engine.CheckResult, policy: str, stage: Stage
    ) -> None:
        blocked = GuardedPayload(topic=topic, verdict="block", findings=result.findings, original=payload)
        await bus.publish(self.js, subjects.guard_blocked(topic), blocked, source=self.source, event_id=f"{event.id}-blocked")
        audit = GuardAudit(
            topic=topic, verdict="block", policy=policy, stage=stage, findings=result.findings, message_id=event.id
        )
        await bus.publish(self.js, subjects.guard_audit(topic), audit, source=self.source, event_id=f"{event.id}-audit")
        kinds = ", ".join(sorted({f"{finding.detector}.{finding.type}" for finding in result.findings if finding.action == "block"}))
        logger.info("blocked a message on %s: %s", subjects.guard_in(topic), kinds, extra={"msg_id": event.id, "policy": policy})


def _text_of(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("text"), str):
        return payload["text"]
    shown = type(payload).__name__ if not isinstance(payload, dict) else f"object with keys {sorted(payload)[:8]}"
    raise PermanentError(f"cannot guard a {shown}: expected a JSON string or an object with a string `text` field")

"""Retrieval-augmented answering: guard, retrieve, guard, compose, guard.

    question ─▶ guard (input) ─▶ vector query ─▶ guard each passage (retrieval)
             ─▶ compose (extractive or LLM) ─▶ guard (output) ─▶ AskReply

A blocked question stops before retrieval, so the vector DB never sees it.
A redacted question is retrieved and answered in its redacted form. A
passage blocked at the retrieval stage (for example instructions injected
into a document) is dropped before composing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS

from continuum.services.workflow.compose import Passage, compose_extractive, compose_with_llm
from continuum.services.workflow.settings import WorkflowSettings
from continuum.services.workflow.steps import run_step
from continuum.shared import subjects, tracing
from continuum.shared.rpc import call
from continuum.shared.schemas import (
    AskReply,
    AskRequest,
    Citation,
    Finding,
    GuardCheckReply,
    GuardCheckRequest,
    GuardStep,
    Hit,
    QueryReply,
    QueryRequest,
)
from continuum.shared.schemas.guard import Stage

logger = logging.getLogger(__name__)

GUARD_CHECK_SUBJECT = subjects.guard("check")
VECTOR_QUERY_SUBJECT = subjects.vector("query")


@dataclass
class RagPipeline:
    nc: NATS
    settings: WorkflowSettings

    async def _guard(self, step: str, text: str, stage: Stage, policy: str) -> GuardCheckReply:
        request = GuardCheckRequest(text=text, stage=stage, policy=policy)
        return await run_step(
            step,
            lambda: call(self.nc, GUARD_CHECK_SUBJECT, request, GuardCheckReply, timeout=self.settings.guard_timeout_s),
            timeout=self.settings.guard_timeout_s + 0.5,
            retries=self.settings.retries,
            backoff=self.settings.retry_backoff_s,
        )

    async def _retrieve(self, request: AskRequest, question: str) -> list[Hit]:
        query = QueryRequest(
            collection=request.collection,
            text=question,
            k=request.k,
            mode=request.mode or self.settings.query_mode,  # type: ignore[arg-type]
        )
        reply = await run_step(
            "vector query",
            lambda: call(self.nc, VECTOR_QUERY_SUBJECT, query, QueryReply, timeout=self.settings.query_timeout_s),
            timeout=self.settings.query_timeout_s + 0.5,
            retries=self.settings.retries,
            backoff=self.settings.retry_backoff_s,
        )
        return reply.hits

    async def _guard_passages(self, hits: list[Hit], policy: str) -> tuple[list[Passage], list[GuardStep]]:
        verdicts = await asyncio.gather(
            *(self._guard("guard retrieval", hit.text, "retrieval", policy) for hit in hits)
        )
        passages: list[Passage] = []
        steps: list[GuardStep] = []
        for hit, verdict in zip(hits, verdicts):
            steps.append(GuardStep(stage="retrieval", verdict=verdict.verdict, findings=verdict.findings, target=hit.id))
            if verdict.verdict == "block":
                logger.info("passage dropped by the retrieval guardrail", extra={"chunk_id": hit.id})
                continue
            text = verdict.redacted_text if verdict.verdict == "redact" and verdict.redacted_text else hit.text
            passages.append(Passage(number=len(passages) + 1, hit=hit, text=text))
        return passages, steps

    async def _compose(self, question: str, passages: list[Passage]) -> tuple[str, str]:
        settings = self.settings
        chosen = passages[: max(settings.candidates_per_answer, 1)]
        if settings.llm_url and chosen:
            answer = await run_step(
                "compose",
                lambda: compose_with_llm(
                    question,
                    chosen,
                    url=settings.llm_url,
                    model=settings.llm_model,
                    api_key=settings.llm_api_key,
                    timeout=settings.compose_timeout_s,
                ),
                timeout=settings.compose_timeout_s + 1.0,
                retries=0,
                backoff=settings.retry_backoff_s,
            )
            return answer, "llm"
        return compose_extractive(question, chosen, settings.max_quote_chars), "extractive"

    async def ask(self, request: AskRequest) -> AskReply:
        started = time.perf_counter()
        subjects.validate_name(request.collection, kind="collection name")
        trace_id = tracing.current_trace_id()
        guard_steps: list[GuardStep] = []

        checked = await self._guard("guard input", request.question, "input", request.policy)
        guard_steps.append(GuardStep(stage="input", verdict=checked.verdict, findings=checked.findings))
        if checked.verdict == "block":
            return self._blocked(request, "input", checked.findings, guard_steps, trace_id, started)
        question = checked.redacted_text if checked.verdict == "redact" and checked.redacted_text else request.question

        hits = await self._retrieve(request, question)
        passages, passage_steps = await self._guard_passages(hits, request.policy)
        guard_steps.extend(passage_steps)

        answer, composer = await self._compose(question, passages)
        cited = passages[: max(self.settings.candidates_per_answer, 1)]

        checked_answer = await self._guard("guard output", answer, "output", request.policy)
        guard_steps.append(GuardStep(stage="output", verdict=checked_answer.verdict, findings=checked_answer.findings))
        if checked_answer.verdict == "block":
            return self._blocked(request, "output", checked_answer.findings, guard_steps, trace_id, started)
        if checked_answer.verdict == "redact" and checked_answer.redacted_text:
            answer = checked_answer.redacted_text

        return AskReply(
            answer=answer,
            question=question,
            citations=[_citation(passage) for passage in cited],
            findings=[finding for step in guard_steps for finding in step.findings],
            guard=guard_steps,
            composer=composer,  # type: ignore[arg-type]
            trace_id=trace_id,
            took_ms=(time.perf_counter() - started) * 1000.0,
        )

    def _blocked(
        self,
        request: AskRequest,
        stage: str,
        findings: list[Finding],
        guard_steps: list[GuardStep],
        trace_id: str,
        started: float,
    ) -> AskReply:
        reasons = "; ".join(sorted({finding.reason or finding.type for finding in findings})) or "policy"
        logger.info("question blocked at the %s stage", stage, extra={"collection": request.collection})
        return AskReply(
            answer=f"Blocked by the {stage} guardrail: {reasons}.",
            findings=findings,
            guard=guard_steps,
            blocked=True,
            blocked_stage=stage,
            composer="none",
            trace_id=trace_id,
            took_ms=(time.perf_counter() - started) * 1000.0,
        )


def _citation(passage: Passage) -> Citation:
    hit = passage.hit
    return Citation(
        number=passage.number,
        source_uri=hit.source_uri,
        chunk_id=hit.id,
        title=hit.title,
        heading_path=hit.heading_path,
        score=hit.score,
    )

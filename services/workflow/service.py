"""Service wiring: the `ctm.rag.ask` endpoint."""

from __future__ import annotations

import logging

from nats.micro import Service as MicroService

from continuum.services.workflow.errors import StepFailed
from continuum.services.workflow.rag import RagPipeline
from continuum.services.workflow.settings import WorkflowSettings
from continuum.shared import __version__, subjects
from continuum.shared.config import load_section
from continuum.shared.errors import SubjectError
from continuum.shared.rpc import ApiFailure, Endpoint, start_service
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas import AskReply, AskRequest

logger = logging.getLogger(__name__)


class WorkflowService:
    def __init__(self) -> None:
        self._micro: MicroService | None = None
        self._pipeline: RagPipeline | None = None

    async def start(self, context: ServiceContext) -> None:
        settings = load_section("workflow", WorkflowSettings, context.config_path)
        self._pipeline = RagPipeline(context.nc, settings)
        composer = f"LLM at {settings.llm_url}" if settings.llm_url else "extractive"
        logger.info("RAG answers are %s", composer)
        self._micro = await start_service(
            context.nc,
            name="workflow",
            version=__version__,
            description="Event-driven pipelines over NATS, starting with retrieval-augmented answering.",
            endpoints=[
                Endpoint("ask", subjects.rag("ask"), AskRequest, self._handle_ask, "Answer a question from a collection."),
            ],
        )

    async def _handle_ask(self, request: AskRequest) -> AskReply:
        assert self._pipeline is not None
        if not request.question.strip():
            raise ApiFailure("bad_request", "question is empty; send a non-empty `question`", field="question")
        if request.k < 1 or request.k > 100:
            raise ApiFailure("bad_request", f"k={request.k} is out of range; use 1 to 100", field="k")
        try:
            return await self._pipeline.ask(request)
        except SubjectError as exc:
            raise ApiFailure("bad_request", str(exc), field="collection") from exc
        except StepFailed as exc:
            logger.warning("RAG pipeline failed: %s", exc)
            code = exc.code if exc.code in {"not_found", "bad_request", "timeout", "unavailable"} else "unavailable"
            raise ApiFailure(code, str(exc), field=exc.step) from exc  # type: ignore[arg-type]

    async def stop(self) -> None:
        if self._micro is not None:
            await self._micro.stop()

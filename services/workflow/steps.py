"""Running one pipeline step with a timeout and retries for transient errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from continuum.services.workflow.errors import StepFailed
from continuum.shared import tracing
from continuum.shared.rpc import ApiCallError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Error codes from a called service that a retry may fix.
TRANSIENT_CODES = frozenset({"timeout", "unavailable"})


async def run_step(
    step: str,
    action: Callable[[], Awaitable[T]],
    *,
    timeout: float,
    retries: int,
    backoff: float,
) -> T:
    """Run `action` under a span named after the step; retry transient failures, then raise StepFailed.

    A non-transient error from the called service (a bad request, a missing
    collection) fails at once, because repeating it cannot succeed.
    """
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        with tracing.tracer().start_as_current_span(f"step {step}") as span:
            span.set_attribute("continuum.step.attempt", attempt)
            try:
                return await asyncio.wait_for(action(), timeout)
            except asyncio.TimeoutError:
                code, message = "timeout", f"no result within {timeout}s"
            except ApiCallError as exc:
                code, message = exc.error.code, exc.error.message
                if code not in TRANSIENT_CODES:
                    raise StepFailed(step, message, code=code, attempts=attempt) from exc

        if attempt < attempts:
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("step %s failed (%s: %s); retry %d of %d in %.2fs", step, code, message, attempt, retries, delay)
            await asyncio.sleep(delay)

    raise StepFailed(step, message, code=code, attempts=attempts)

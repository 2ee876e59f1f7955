"""Step retries and errors against real NATS request/reply services."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from continuum.services.workflow.compose import Passage, compose_with_llm
from continuum.services.workflow.errors import StepFailed
from continuum.services.workflow.steps import run_step
from continuum.shared.rpc import ApiFailure, Endpoint, call, start_service
from continuum.shared.schemas import Hit, NameRequest, OkReply


async def _flaky_service(nc, subject: str, failures: int, code: str):
    calls = {"count": 0}

    async def handle(request: NameRequest) -> OkReply:
        calls["count"] += 1
        if calls["count"] <= failures:
            raise ApiFailure(code, f"attempt {calls['count']} failed")
        return OkReply(message=request.name)

    service = await start_service(nc, name=f"flaky_{subject.replace('.', '_')}", version="0.0.1", description="test",
                                  endpoints=[Endpoint("flaky", subject, NameRequest, handle)])
    return service, calls


async def test_transient_errors_are_retried(nc, unique):
    subject = f"test.flaky.{unique}"
    service, calls = await _flaky_service(nc, subject, failures=2, code="unavailable")

    reply = await run_step("flaky", lambda: call(nc, subject, NameRequest(name="ok"), OkReply), timeout=2, retries=2, backoff=0.01)

    await service.stop()
    assert reply.message == "ok"
    assert calls["count"] == 3


async def test_retries_exhausted_names_step(nc, unique):
    subject = f"test.flaky.{unique}"
    service, calls = await _flaky_service(nc, subject, failures=10, code="unavailable")

    with pytest.raises(StepFailed) as caught:
        await run_step("vector query", lambda: call(nc, subject, NameRequest(name="x"), OkReply), timeout=2, retries=1, backoff=0.01)

    await service.stop()
    assert caught.value.step == "vector query"
    assert caught.value.attempts == 2
    assert "vector query" in str(caught.value)
    assert calls["count"] == 2


async def test_permanent_error_not_retried(nc, unique):
    subject = f"test.flaky.{unique}"
    service, calls = await _flaky_service(nc, subject, failures=10, code="not_found")

    with pytest.raises(StepFailed) as caught:
        await run_step("vector query", lambda: call(nc, subject, NameRequest(name="x"), OkReply), timeout=2, retries=3, backoff=0.01)

    await service.stop()
    assert caught.value.code == "not_found"
    assert calls["count"] == 1


async def test_no_responder_is_retried_then_fails(nc, unique):
    with pytest.raises(StepFailed) as caught:
        await run_step("guard input", lambda: call(nc, f"nobody.{unique}", NameRequest(name="x"), OkReply, timeout=0.5),
                       timeout=1, retries=1, backoff=0.01)

    assert caught.value.code == "unavailable"
    assert caught.value.attempts == 2


async def test_step_timeout_names_step():
    async def slow() -> None:
        await asyncio.sleep(5)

    with pytest.raises(StepFailed) as caught:
        await run_step("compose", slow, timeout=0.1, retries=0, backoff=0.01)

    assert caught.value.code == "timeout"
    assert "compose" in str(caught.value)


@pytest.fixture
async def chat_completions_server(unused_tcp_port):
    """A local HTTP server speaking the OpenAI chat completions shape, recording what it received."""
    received: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        received.append({"body": body, "auth": request.headers.get("Authorization")})
        return web.json_response({"choices": [{"message": {"role": "assistant", "content": "It calls __enter__ first [1]."}}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield f"http://127.0.0.1:{unused_tcp_port}/v1", received
    await runner.cleanup()


async def test_llm_composer_sends_numbered_passages(chat_completions_server):
    url, received = chat_completions_server
    passage = Passage(number=1, hit=Hit(id="c1", score=1.0, text="__enter__ is called first.", source_uri="pydoc://topics/with", title="with"), text="__enter__ is called first.")

    answer = await compose_with_llm("What runs first?", [passage], url=url, model="tiny", api_key="key-123456", timeout=5)

    assert answer == "It calls __enter__ first [1]."
    assert received[0]["auth"] == "Bearer key-123456"
    assert received[0]["body"]["model"] == "tiny"
    assert "[1] with" in received[0]["body"]["messages"][1]["content"]


async def test_llm_composer_error_names_status(unused_tcp_port):
    with pytest.raises(StepFailed) as caught:
        await compose_with_llm("q", [], url=f"http://127.0.0.1:{unused_tcp_port}/v1", model="m", api_key="", timeout=2)

    assert caught.value.step == "compose"

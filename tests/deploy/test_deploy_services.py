"""Each control-plane service started with its shipped credentials against the provisioned hub.

The admin provisioned the topology; a service's own start-up provision
only reads it. Each test checks that the service runs, does its main job,
and that the hub logged no permission violation for its user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from deploy_support import Deployment, ServiceProcess, eventually, free_port, violations

from continuum.shared import bus, subjects
from continuum.shared.rpc import call
from continuum.shared.schemas import EmptyRequest
from continuum.shared.schemas.guard import GuardCheckReply, GuardCheckRequest
from continuum.shared.schemas.ingest import Chunk, ChunkBatch, EmbedReply, EmbedRequest
from continuum.shared.schemas.vector import CollectionsReply

pytestmark = pytest.mark.timeout(120)

StartService = Callable[..., "AsyncIterator[ServiceProcess]"]


@pytest.fixture
async def start_service(provisioned: Deployment, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Start a service as its role's user on the first hub node; stop it after the test."""
    started: list[ServiceProcess] = []

    async def _start(name: str, env: dict[str, str] | None = None) -> ServiceProcess:
        server = provisioned.hub[0]
        service = ServiceProcess(
            name, name, provisioned.passwords[name], f"nats://127.0.0.1:{server.port}", tmp_path, env or {}
        )
        service.violations_before = len(violations(server, name))  # type: ignore[attr-defined]
        started.append(await service.start())
        await service.wait_running()
        return service

    yield _start
    for service in started:
        await service.stop()


def new_violations(deployment: Deployment, service: ServiceProcess) -> list[str]:
    return violations(deployment.hub[0], service.user)[service.violations_before :]  # type: ignore[attr-defined]


async def test_scheduler_answers_node_list(provisioned, start_service):
    scheduler = await start_service("scheduler")
    admin = await provisioned.connect("admin")
    try:
        reply = await admin.request(subjects.api("nodes"), json.dumps({}).encode(), timeout=5.0)
        lease = await eventually(lambda: _lease_holder(admin))
    finally:
        await admin.close()

    assert "error" not in json.loads(reply.data)
    assert lease is not None
    assert scheduler.process.returncode is None
    assert new_violations(provisioned, scheduler) == []


async def _lease_holder(nc) -> bytes | None:  # type: ignore[no-untyped-def]
    try:
        return (await (await nc.jetstream().key_value("ctm-scheduler")).get("leader")).value
    except Exception:  # noqa: BLE001 - not elected yet
        return None


async def test_guardrails_answers_check(provisioned, start_service):
    guardrails = await start_service("guardrails")
    admin = await provisioned.connect("admin")
    try:
        reply = await call(admin, subjects.guard("check"), GuardCheckRequest(text="mail me at jane@example.com"), GuardCheckReply)
    finally:
        await admin.close()

    assert reply.verdict != "allow"
    assert reply.findings
    assert new_violations(provisioned, guardrails) == []


async def test_vectordb_stores_batch_and_lists_it(provisioned, start_service):
    vectordb = await start_service("vectordb")
    admin = await provisioned.connect("admin")
    batch = ChunkBatch(
        collection="deploy-docs",
        document_id="doc-1",
        doc_checksum="0" * 64,
        model="test-model",
        dimension=4,
        chunks=[Chunk(id="doc-1-0", text="edge sites", vector=[1.0, 0.0, 0.0, 0.0], source_uri="mem://doc-1")],
    )
    try:
        # The writer takes the collection's lock in ctm-vectordb-locks before it commits.
        await bus.publish(admin.jetstream(), subjects.chunks("deploy-docs"), batch, source="tests/deploy")

        async def _listed() -> list[str]:
            reply = await call(admin, subjects.vector("collections"), EmptyRequest(), CollectionsReply)
            return [info.name for info in reply.collections]

        names = await eventually(_listed, timeout=30.0)
    finally:
        await admin.close()

    assert names == ["deploy-docs"]
    assert new_violations(provisioned, vectordb) == []


async def test_workflow_registers_rag_ask(provisioned, start_service):
    workflow = await start_service("workflow")
    admin = await provisioned.connect("admin")
    try:
        info = json.loads((await admin.request("$SRV.INFO.workflow", b"", timeout=5.0)).data)
    finally:
        await admin.close()

    assert subjects.rag("ask") in [endpoint["subject"] for endpoint in info["endpoints"]]
    assert new_violations(provisioned, workflow) == []


@pytest.fixture
async def embeddings_server() -> AsyncIterator[str]:
    """An OpenAI-compatible embeddings endpoint on loopback that returns a 4-dimensional vector per text."""

    async def _embeddings(request: web.Request) -> web.Response:
        body = await request.json()
        data = [{"index": index, "embedding": [1.0, float(len(text)), 0.0, 1.0]} for index, text in enumerate(body["input"])]
        return web.json_response({"data": data, "model": body["model"]})

    app = web.Application()
    app.router.add_post("/v1/embeddings", _embeddings)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()


async def test_dataprep_answers_embed(provisioned, start_service, embeddings_server):
    # The remote embedder starts at once; the ONNX model would be exported first.
    dataprep = await start_service(
        "dataprep",
        {
            "CONTINUUM_DATAPREP_EMBEDDER": "openai",
            "CONTINUUM_DATAPREP_OPENAI_BASE_URL": embeddings_server,
            "CONTINUUM_DATAPREP_OPENAI_DIMENSION": "4",
        },
    )
    admin = await provisioned.connect("admin")
    try:
        reply = await call(admin, subjects.EMBED, EmbedRequest(texts=["edge", "cloud"]), EmbedReply, timeout=10.0)
    finally:
        await admin.close()

    assert reply.dimension == 4
    assert len(reply.vectors) == 2
    assert new_violations(provisioned, dataprep) == []


async def test_bridge_accepts_webhook(provisioned, start_service):
    port = free_port()
    secret = "shop-secret-for-tests"
    sources = {"shop": {"scheme": "hmac", "secrets": [secret]}}
    bridge = await start_service(
        "bridge", {"CONTINUUM_BRIDGE_PORT": str(port), "CONTINUUM_BRIDGE_SOURCES": json.dumps(sources)}
    )
    body = json.dumps({"order": 42}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{port}/hooks/shop", data=body, headers={"X-Signature-256": signature}
        ) as response:
            status = response.status
    admin = await provisioned.connect("admin")
    try:
        stored = await admin.jetstream().get_last_msg("HOOKS", subjects.hook("shop", "webhook"))
        listing = json.loads((await admin.request(subjects.api("webhooks_list"), b"{}", timeout=5.0)).data)
    finally:
        await admin.close()

    assert 200 <= status < 300
    assert json.loads(stored.data) == {"order": 42} or b"42" in stored.data
    assert "error" not in listing
    assert new_violations(provisioned, bridge) == []

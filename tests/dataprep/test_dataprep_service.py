"""Ingest jobs end to end over a real nats-server, moto's S3 server and files on disk."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiobotocore.session import get_session

from continuum.services.dataprep.settings import DataprepSettings
from continuum.shared import bus
from continuum.shared.rpc import ApiCallError, call
from continuum.shared.schemas.ingest import ChunkingOptions, EmbedReply, EmbedRequest, IngestRequest

from test_dataprep_formats import make_pdf

pytestmark = pytest.mark.timeout(180)


def request(collection: str, source: str = "", job: str = "", **kwargs) -> IngestRequest:  # noqa: ANN003
    return IngestRequest(collection=collection, source=source, job_id=job, **kwargs)


def write_corpus(root: Path) -> None:
    (root / "guide.md").write_text("# Guide\n\n## Install\n\nRun the installer to set up Continuum.\n")
    (root / "notes.txt").write_text("Plain text notes about NATS subjects.\n\nSecond paragraph.")
    (root / "page.html").write_text("<html><body><nav>menu</nav><main><h1>Page</h1><p>HTML body text.</p></main></body></html>")
    (root / "records.jsonl").write_text(json.dumps({"text": "A JSON Lines record."}) + "\n")
    (root / "data.json").write_text(json.dumps({"content": "A JSON document."}))
    (root / "report.pdf").write_bytes(make_pdf(["The PDF mentions vector databases."]))
    (root / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not a pdf body")
    (root / "image.bin").write_bytes(bytes(range(256)) * 8)


async def test_directory_ingest_isolates_bad_documents(start_service, watcher_factory, roots, unique, tmp_path):  # noqa: ANN001
    write_corpus(roots)
    outside = tmp_path / "secret.txt"
    outside.write_text("never read")
    (roots / "escape.txt").symlink_to(outside)
    await start_service(DataprepSettings(roots=[str(roots)]))

    async with watcher_factory(f"docs-{unique}") as watcher:
        status = await watcher.run(request(f"docs-{unique}", str(roots), f"job-{unique}"))
        outside_status = await watcher.run(request(f"docs-{unique}", str(outside), f"out-{unique}"))

    assert status.state == "completed"
    assert status.documents_total == 9
    assert status.documents_done == 6
    failed = {Path(error.document).name: error.reason for error in status.errors}
    assert set(failed) == {"broken.pdf", "image.bin", "escape.txt"}
    assert "outside the configured roots" in failed["escape.txt"]
    texts = " ".join(chunk.text for chunk in watcher.chunks(f"job-{unique}"))
    for expected in ("installer", "NATS subjects", "HTML body text", "JSON Lines record", "JSON document", "vector databases"):
        assert expected in texts
    assert "menu" not in texts
    assert "never read" not in texts
    assert outside_status.state == "completed"
    assert outside_status.errors[0].reason.endswith("add its directory to dataprep.roots")


async def test_unexpected_parser_error_fails_one_document(start_service, watcher_factory, roots, unique):  # noqa: ANN001
    # json.loads raises RecursionError, not JSONDecodeError, on very deep nesting.
    (roots / "deep.json").write_text("[" * 200_000)
    (roots / "good.md").write_text("# Good\n\nThis document still gets ingested.\n")
    await start_service(DataprepSettings(roots=[str(roots)]))

    async with watcher_factory(f"deep-{unique}") as watcher:
        status = await watcher.run(request(f"deep-{unique}", str(roots), f"job-{unique}"))

    assert status.state == "completed"
    assert status.documents_done == 1
    assert [Path(error.document).name for error in status.errors] == ["deep.json"]
    assert "RecursionError" in status.errors[0].reason


async def test_chunks_carry_metadata_and_model(start_service, watcher_factory, roots, unique, embedder):  # noqa: ANN001
    (roots / "guide.md").write_text("# Guide\n\n## Install\n\nRun the installer.\n")
    await start_service(DataprepSettings(roots=[str(roots)]))
    async with watcher_factory(f"meta-{unique}") as watcher:
        await watcher.run(request(f"meta-{unique}", str(roots / "guide.md"), f"job-{unique}", metadata={"team": "docs"}))
    batch = watcher.batches[0]
    chunk = batch.chunks[0]
    assert batch.model == embedder.name
    assert batch.dimension == len(chunk.vector) == 384
    assert chunk.source_uri == f"file://{roots / 'guide.md'}"
    assert chunk.title == "Guide"
    assert chunk.heading_path == ["Guide", "Install"]
    assert chunk.metadata == {"team": "docs"}
    assert chunk.token_count > 2


async def test_inline_and_pydoc_ingest(start_service, watcher_factory, unique):  # noqa: ANN001
    await start_service(DataprepSettings())
    async with watcher_factory(f"inline-{unique}") as watcher:
        inline = await watcher.run(request(f"inline-{unique}", job=f"in-{unique}", text="# Hello\n\nInline body."))
        topics = await watcher.run(request(f"inline-{unique}", "pydoc:topics/assert", f"py-{unique}"))
        missing = await watcher.run(request(f"inline-{unique}", "pydoc:topics/nope", f"miss-{unique}"))
    assert inline.documents_done == 1
    assert "Inline body." in watcher.chunks(f"in-{unique}")[0].text
    assert topics.documents_done == 1
    pydoc_chunk = watcher.chunks(f"py-{unique}")[0]
    assert pydoc_chunk.source_uri == "pydoc://topics/assert"
    assert pydoc_chunk.title == "assert"
    assert pydoc_chunk.heading_path == ['The "assert" statement']
    assert missing.errors and "no such pydoc topic" in missing.errors[0].reason


async def test_reingest_is_idempotent(start_service, watcher_factory, roots, unique, js):  # noqa: ANN001
    (roots / "a.md").write_text("# A\n\n" + "Stable text. " * 200)
    await start_service(DataprepSettings(roots=[str(roots)]))
    collection = f"idem-{unique}"
    async with watcher_factory(collection) as watcher:
        await watcher.run(request(collection, str(roots), f"first-{unique}"))
        before = (await js.stream_info("CHUNKS")).state.messages
        await watcher.run(request(collection, str(roots), f"second-{unique}"))
        after = (await js.stream_info("CHUNKS")).state.messages
    first = [c.id for c in watcher.chunks(f"first-{unique}")]
    assert len(first) > 1
    assert after == before
    assert first == sorted(set(first), key=first.index)


async def test_changed_document_gets_new_checksum(start_service, watcher_factory, roots, unique):  # noqa: ANN001
    path = roots / "doc.txt"
    path.write_text("Original content of the document.")
    await start_service(DataprepSettings(roots=[str(roots)]))
    collection = f"change-{unique}"
    async with watcher_factory(collection) as watcher:
        await watcher.run(request(collection, str(path), f"v1-{unique}"))
        path.write_text("Rewritten content.")
        await watcher.run(request(collection, str(path), f"v2-{unique}"))
    old, new = watcher.batches
    assert old.document_id == new.document_id
    assert old.doc_checksum != new.doc_checksum
    assert {c.id for c in old.chunks}.isdisjoint({c.id for c in new.chunks})
    assert new.chunks[0].text == "Rewritten content."


async def test_invalid_request_reports_failed_job(start_service, watcher_factory, unique):  # noqa: ANN001
    await start_service(DataprepSettings())
    async with watcher_factory(f"bad-{unique}") as watcher:
        scheme = await watcher.run(request(f"bad-{unique}", "ftp://host/file", f"ftp-{unique}"))
        limits = await watcher.run(
            request(f"bad-{unique}", job=f"lim-{unique}", text="x", chunking=ChunkingOptions(max_tokens=4096))
        )
    assert scheme.state == "failed"
    assert "unknown scheme 'ftp'" in scheme.message
    assert limits.state == "failed"
    assert "max_tokens 4096" in limits.message


async def test_s3_ingest_paginates(start_service, watcher_factory, s3_settings, unique):  # noqa: ANN001
    bucket = f"bucket-{unique}"
    async with get_session().create_client(
        "s3", endpoint_url=s3_settings.endpoint_url, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=bucket)
        for n in range(5):
            await client.put_object(Bucket=bucket, Key=f"docs/note{n}.md", Body=f"# Note {n}\n\nBody of note {n}.".encode())
        await client.put_object(Bucket=bucket, Key="docs/report.pdf", Body=make_pdf(["S3 hosted PDF text."]))
        await client.put_object(Bucket=bucket, Key="other/skip.txt", Body=b"not under the prefix")
    await start_service(DataprepSettings(s3=s3_settings))
    async with watcher_factory(f"s3-{unique}") as watcher:
        status = await watcher.run(request(f"s3-{unique}", f"s3://{bucket}/docs/", f"s3-{unique}"))
    assert status.documents_total == 6
    assert status.documents_done == 6
    uris = {chunk.source_uri for chunk in watcher.chunks()}
    assert f"s3://{bucket}/docs/note4.md" in uris
    assert f"s3://{bucket}/docs/report.pdf" in uris
    assert not any("other/" in uri for uri in uris)


async def test_object_store_ingest(start_service, watcher_factory, js, unique):  # noqa: ANN001
    store = await js.object_store("ctm-documents")
    await store.put(f"{unique}/faq.md", b"# FAQ\n\nObject store answer.")
    await start_service(DataprepSettings())
    async with watcher_factory(f"obj-{unique}") as watcher:
        status = await watcher.run(request(f"obj-{unique}", f"objstore://ctm-documents/{unique}/", f"obj-{unique}"))
    assert status.documents_done == 1
    assert watcher.chunks()[0].source_uri == f"objstore://ctm-documents/{unique}/faq.md"


async def test_two_instances_split_jobs_without_duplicates(start_service, watcher_factory, roots, unique):  # noqa: ANN001
    for n in range(6):
        (roots / f"doc{n}.txt").write_text(f"Document {n} text.")
    first = await start_service(DataprepSettings(roots=[str(roots)]))
    second = await start_service(DataprepSettings(roots=[str(roots)]))
    collection = f"scale-{unique}"
    async with watcher_factory(collection) as watcher:
        jobs = [request(collection, str(roots / f"doc{n}.txt"), f"j{n}-{unique}") for n in range(6)]
        statuses = await asyncio.gather(*(watcher.run(job) for job in jobs))
    assert all(status.state == "completed" for status in statuses)
    assert first.jobs_started + second.jobs_started == 6
    assert first.jobs_started > 0
    assert second.jobs_started > 0
    completed = [s for job in jobs for s in watcher.statuses[job.job_id] if s.state == "completed"]
    assert len(completed) == 6


async def test_embed_endpoint_replies_and_rejects_empty(start_service, nc):  # noqa: ANN001
    await start_service(DataprepSettings())
    reply = await call(nc, "ctm.embed", EmbedRequest(texts=["hello world", "goodbye"]), EmbedReply, timeout=30)
    assert reply.dimension == 384
    assert len(reply.vectors) == 2
    with pytest.raises(ApiCallError) as raised:
        await call(nc, "ctm.embed", EmbedRequest(texts=[]), EmbedReply, timeout=30)
    assert raised.value.error.code == "bad_request"

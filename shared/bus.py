"""Connecting to NATS, publishing with PubAck checks, and durable pull-consumer loops.

Delivery is at least once: a handler's message is acked only after the
handler returns, so the handler's effect must be durable and idempotent by
then. Failures map to JetStream's replies:

- `TransientError` or any unexpected exception: nak with the consumer's
  backoff, so the message comes back later.
- `SchemaError` (undecodable payload) or `PermanentError`: term, and a
  `DeadLetter` on `ctm.dlq.<stream>`.
- A failure on the last allowed delivery: term and dead-letter as well, so
  the server never drops a message silently at `max_deliver`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from continuum.shared import envelope, subjects, tracing
from continuum.shared.config import NatsSettings, Settings
from continuum.shared.envelope import CloudEvent
from continuum.shared.errors import BusError, PermanentError, PublishError, SchemaError, TransientError
from continuum.shared.logs import log_context, register_secret
from continuum.shared.natsserver import check_version
from continuum.shared.schemas import DeadLetter, encode
from continuum.shared.topology import ConsumerSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[CloudEvent[T], Msg], Awaitable[None]]


# Connecting ---------------------------------------------------------------


def _tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    if not (settings.tls_ca_file or settings.tls_cert_file or settings.url.startswith("tls://")):
        return None
    context = ssl.create_default_context(cafile=settings.tls_ca_file)
    if settings.tls_cert_file:
        context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def connect_options(settings: NatsSettings, *, name: str) -> dict[str, Any]:
    """Build nats-py connect() keyword arguments from settings, including auth and TLS."""
    register_secret(settings.password)
    register_secret(settings.token)
    options: dict[str, Any] = {
        "servers": [url.strip() for url in settings.url.split(",") if url.strip()],
        "name": name,
        "connect_timeout": settings.connect_timeout_s,
        "max_reconnect_attempts": settings.max_reconnect_attempts,
        "reconnect_time_wait": settings.reconnect_wait_s,
        "allow_reconnect": True,
    }
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    if settings.token:
        options["token"] = settings.token
    if settings.creds_file:
        options["user_credentials"] = settings.creds_file
    if settings.nkey_seed_file:
        options["nkeys_seed"] = settings.nkey_seed_file
    tls = _tls_context(settings)
    if tls is not None:
        options["tls"] = tls
        if settings.tls_hostname:
            options["tls_hostname"] = settings.tls_hostname
    return options


class _ConnectionLogger:
    """nats-py callbacks that log disconnects, reconnects and errors, repeating an error at most every 30 s."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._last_error: tuple[str, float] = ("", 0.0)
        self._suppressed = 0
        # Set when the client closes on purpose, so the disconnect is not reported as a fault.
        self.closing = False

    async def error(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        previous, logged_at = self._last_error
        now = time.monotonic()
        if text == previous and now - logged_at < 30.0:
            self._suppressed += 1
            return
        logger.warning("NATS connection error: %s (%d repeats suppressed)", text, self._suppressed, extra={"client": self.name})
        self._last_error = (text, now)
        self._suppressed = 0

    async def disconnected(self) -> None:
        if self.closing:
            return
        logger.warning("disconnected from NATS; reconnecting", extra={"client": self.name})

    async def reconnected(self) -> None:
        logger.info("reconnected to NATS", extra={"client": self.name})

    async def closed(self) -> None:
        logger.info("NATS connection closed", extra={"client": self.name})


async def connect(settings: Settings | NatsSettings, *, name: str, check_server: bool = True) -> NATS:
    """Connect to NATS with the configured auth and TLS, and check the server version.

    Raises BusError when no server is reachable, and NatsServerError when the
    server is older than Continuum supports.
    """
    nats_settings = settings.nats if isinstance(settings, Settings) else settings
    callbacks = _ConnectionLogger(name)
    options = connect_options(nats_settings, name=name)
    # nats-py retries the first connection as often as later reconnects, forever
    # by default; a deadline turns "no server" into an error the caller sees.
    try:
        nc = await asyncio.wait_for(
            nats.connect(
                **options,
                error_cb=callbacks.error,
                disconnected_cb=callbacks.disconnected,
                reconnected_cb=callbacks.reconnected,
                closed_cb=callbacks.closed,
            ),
            nats_settings.initial_connect_timeout_s,
        )
    except (nats.errors.NoServersError, OSError, asyncio.TimeoutError) as exc:
        raise BusError(
            f"cannot connect to NATS at {nats_settings.url}: {exc}; start a server, "
            f"run `continuum up`, or set CONTINUUM_NATS_URL"
        ) from exc

    if check_server:
        version = nc.connected_server_version
        try:
            check_version((version.major, version.minor, version.patch))
        except Exception:
            await nc.close()
            raise
    logger.info("connected to NATS", extra={"client": name, "url": nc.connected_url.netloc if nc.connected_url else ""})
    _mark_closing_on_close(nc, callbacks)
    return nc


def _mark_closing_on_close(nc: NATS, callbacks: _ConnectionLogger) -> None:
    """Wrap `close` and `drain` so the disconnect they cause is not logged as a fault."""
    close, drain = nc.close, nc.drain

    async def closing_close() -> None:
        callbacks.closing = True
        await close()

    async def closing_drain() -> None:
        callbacks.closing = True
        await drain()

    nc.close = closing_close  # type: ignore[method-assign]
    nc.drain = closing_drain  # type: ignore[method-assign]


def jetstream(nc: NATS, settings: Settings | None = None) -> JetStreamContext:
    domain = settings.jetstream.domain if settings else None
    return nc.jetstream(domain=domain) if domain else nc.jetstream()


# Publishing ---------------------------------------------------------------


async def publish(
    js: JetStreamContext,
    subject: str,
    message: Any,
    *,
    source: str,
    event_id: str | None = None,
    expected_stream: str | None = None,
    timeout: float = 5.0,
    headers: dict[str, str] | None = None,
) -> PubAck:
    """Publish `message` as a CloudEvent and wait for the PubAck.

    `event_id` becomes `ce-id` and `Nats-Msg-Id`: pass a deterministic id
    when a retry must not store the message twice. Raises PublishError when
    JetStream does not acknowledge.
    """
    payload, event_headers = envelope.to_nats(message, source=source, event_id=event_id)
    if headers:
        event_headers.update(headers)
    message_id = event_headers[envelope.MSG_ID_HEADER]

    with tracing.producer_span(subject, event_headers, message_id):
        try:
            ack = await js.publish(subject, payload, timeout=timeout, stream=expected_stream, headers=event_headers)
        except nats.errors.NoRespondersError as exc:
            raise PublishError(f"no stream captures {subject!r}; run `continuum provision`", subject=subject) from exc
        except (nats.errors.TimeoutError, asyncio.TimeoutError) as exc:
            raise PublishError(f"no PubAck for {subject!r} within {timeout}s", subject=subject) from exc
        except nats.js.errors.APIError as exc:
            raise PublishError(f"JetStream rejected the publish to {subject!r}: {exc}", subject=subject) from exc
        except nats.errors.ConnectionClosedError as exc:
            raise PublishError(f"NATS connection closed while publishing to {subject!r}", subject=subject) from exc

    if ack.duplicate:
        logger.debug("duplicate publish ignored by JetStream", extra={"subject": subject, "msg_id": message_id})
    return ack


# Dead letters -------------------------------------------------------------


def _dead_letter(msg: Msg, *, stream: str, consumer: str, error: BaseException, service: str) -> DeadLetter:
    try:
        payload = msg.data.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        payload = base64.b64encode(msg.data).decode("ascii")
        encoding = "base64"
    metadata = msg.metadata
    return DeadLetter(
        stream=stream,
        consumer=consumer,
        subject=msg.subject,
        headers={key: str(value) for key, value in (msg.headers or {}).items()},
        payload=payload,
        payload_encoding=encoding,
        error=str(error),
        error_type=type(error).__name__,
        delivery_count=metadata.num_delivered,
        stream_sequence=metadata.sequence.stream,
        service=service,
    )


async def send_to_dlq(
    js: JetStreamContext, msg: Msg, *, stream: str, consumer: str, error: BaseException, service: str
) -> None:
    """Publish the message and its error to `ctm.dlq.<stream>`, de-duplicated by stream sequence."""
    letter = _dead_letter(msg, stream=stream, consumer=consumer, error=error, service=service)
    await publish(
        js,
        subjects.dlq(stream),
        letter,
        source=f"continuum/{service}",
        event_id=f"dlq-{stream}-{letter.stream_sequence}",
    )


# Consuming ----------------------------------------------------------------


class DurableConsumer(Generic[T]):
    """A pull loop over a durable consumer with bounded concurrency.

    Binds to the consumer declared in `spec` (creating it when provision has
    not run), fetches up to `concurrency` messages at a time, decodes each into
    `schema`, and calls `handler(event, msg)`. `stop()` stops fetching and
    waits up to its timeout for in-flight handlers.
    """

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        schema: type[T],
        handler: Handler[T],
        *,
        service: str,
        concurrency: int = 16,
        fetch_timeout: float = 1.0,
    ) -> None:
        self.js = js
        self.spec = spec
        self.schema = schema
        self.handler = handler
        self.service = service
        self.concurrency = concurrency
        self.fetch_timeout = fetch_timeout
        self.processed = 0
        self.failed = 0
        self.dead_lettered = 0
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._subscription: JetStreamContext.PullSubscription | None = None

    async def _bind(self) -> JetStreamContext.PullSubscription:
        from continuum.shared.topology import ProvisionReport, ensure_consumer

        await ensure_consumer(self.js, self.spec, ProvisionReport())
        return await self.js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)

    async def run(self) -> None:
        """Fetch and dispatch messages until `stop()`; fetch errors are logged and retried, never silent."""
        context = {"stream": self.spec.stream, "consumer": self.spec.durable}
        logger.info("consumer started", extra=context)
        failures = 0
        while not self._stopping.is_set():
            try:
                if self._subscription is None:
                    self._subscription = await self._bind()
                free = self._free_slots()
                if free == 0:
                    await asyncio.sleep(0.005)
                    continue
                messages = await self._subscription.fetch(free, timeout=self.fetch_timeout)
                failures = 0
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every fetch failure is logged and retried
                failures += 1
                delay = min(0.2 * 2**failures, 5.0)
                logger.warning(
                    "fetch failed (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay, extra=context
                )
                if isinstance(exc, (nats.js.errors.NotFoundError, nats.errors.ConnectionClosedError)):
                    self._subscription = None
                await asyncio.sleep(delay)
                continue

            for msg in messages:
                await self._slots.acquire()
                task = asyncio.create_task(self._process(msg))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        logger.info("consumer stopped", extra=context)

    def _free_slots(self) -> int:
        return self.concurrency - len(self._tasks)

    async def _process(self, msg: Msg) -> None:
        try:
            await self._handle_message(msg)
        finally:
            self._slots.release()

    async def _handle_message(self, msg: Msg) -> None:
        metadata = msg.metadata
        message_id = (msg.headers or {}).get("ce-id") or (msg.headers or {}).get(envelope.MSG_ID_HEADER)
        with log_context(
            subject=msg.subject, stream=self.spec.stream, msg_id=message_id, delivery=metadata.num_delivered
        ), tracing.consumer_span(msg.subject, msg.headers, message_id):
            try:
                event = envelope.from_nats(msg.data, msg.headers, self.schema, subject=msg.subject)
                await self.handler(event, msg)
            except (SchemaError, PermanentError) as exc:
                await self._dead_letter(msg, exc)
                return
            except TransientError as exc:
                await self._retry_or_dead_letter(msg, exc, exc.delay)
                return
            except asyncio.CancelledError:
                await self._nak(msg, 0.0)
                raise
            except Exception as exc:  # noqa: BLE001 - an unexpected handler error is retried, then dead-lettered
                logger.error("handler failed", exc_info=True)
                await self._retry_or_dead_letter(msg, exc, None)
                return

            await self._ack(msg)
            self.processed += 1

    async def _retry_or_dead_letter(self, msg: Msg, exc: BaseException, delay: float | None) -> None:
        self.failed += 1
        delivered = msg.metadata.num_delivered
        if delivered >= self.spec.max_deliver:
            await self._dead_letter(msg, exc)
            return
        if delay is None:
            backoff = self.spec.backoff or (1.0,)
            delay = backoff[min(delivered - 1, len(backoff) - 1)]
        logger.warning(
            "transient failure (%s); redelivery %d of %d in %.1fs", exc, delivered + 1, self.spec.max_deliver, delay
        )
        await self._nak(msg, delay)

    async def _dead_letter(self, msg: Msg, exc: BaseException) -> None:
        try:
            await send_to_dlq(
                self.js, msg, stream=self.spec.stream, consumer=self.spec.durable, error=exc, service=self.service
            )
        except Exception:  # noqa: BLE001 - keep the message when the DLQ is unreachable
            logger.error("dead-letter publish failed; message will be redelivered", exc_info=True)
            await self._nak(msg, 5.0)
            return
        self.dead_lettered += 1
        logger.warning("message sent to the dead-letter subject: %s", exc, extra={"dlq": subjects.dlq(self.spec.stream)})
        try:
            await msg.term()
        except Exception:  # noqa: BLE001 - a lost term only means one more delivery
            logger.warning("term failed after dead-lettering", exc_info=True)

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack()
        except Exception:  # noqa: BLE001 - the message will be redelivered; handlers are idempotent
            logger.warning("ack failed; the message will be redelivered", exc_info=True)

    async def _nak(self, msg: Msg, delay: float) -> None:
        try:
            await msg.nak(delay=delay)
        except Exception:  # noqa: BLE001 - the server redelivers after ack_wait anyway
            logger.warning("nak failed; redelivery waits for ack_wait", exc_info=True)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop fetching, then wait up to `timeout` seconds for in-flight handlers."""
        self._stopping.set()
        if self._tasks:
            done, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            if pending:
                logger.warning("%d handlers still running after %.0fs; cancelling", len(pending), timeout)
                for task in pending:
                    task.cancel()
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may already be closed
                logger.debug("unsubscribe failed during stop", exc_info=True)

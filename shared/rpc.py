"""Request/reply endpoints as NATS micro services, and the client side of them.

Every Continuum request/reply service registers through `start_service`, so
it replies to `$SRV.PING`, `$SRV.INFO` and `$SRV.STATS` and shows in
`nats micro ls`. Requests and replies are JSON Structs from `schemas`. A
handler reports a caller's mistake by raising `ApiFailure`; the client gets an
`ErrorReply` body plus the `Nats-Service-Error(-Code)` headers. An unexpected
exception is logged with its traceback and the caller gets only an
`internal` error with an id to search the logs for.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.micro import Request, Service, ServiceConfig, add_service
from nats.micro.service import EndpointConfig

from continuum.shared import tracing
from continuum.shared.errors import ContinuumError, SchemaError
from continuum.shared.logs import log_context
from continuum.shared.schemas import ApiError, ErrorReply, decode, encode
from continuum.shared.schemas.api import ErrorCode

logger = logging.getLogger(__name__)

T = TypeVar("T")

_STATUS_BY_CODE = {
    "bad_request": "400",
    "invalid_spec": "422",
    "blocked": "403",
    "not_found": "404",
    "conflict": "409",
    "timeout": "504",
    "unavailable": "503",
    "internal": "500",
}


class ApiFailure(ContinuumError):
    """Raised by an endpoint handler to send a structured error reply."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.error = ApiError(code=code, message=message, field=field, details=details or [])


class ApiCallError(ContinuumError):
    """A request/reply call that returned an error, timed out, or found no service."""

    def __init__(self, error: ApiError, *, subject: str) -> None:
        super().__init__(f"{subject}: {error.code}: {error.message}")
        self.error = error
        self.subject = subject


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: the handler receives the decoded request and returns a reply Struct."""

    name: str
    subject: str
    request: type[Any]
    handler: Callable[[Any], Awaitable[Any]]
    description: str = ""


def _wrap(endpoint: Endpoint, service_name: str) -> Callable[[Request], Awaitable[None]]:
    async def handle(request: Request) -> None:
        headers = request.headers or {}
        with log_context(subject=endpoint.subject, endpoint=endpoint.name), tracing.consumer_span(
            endpoint.subject, headers, headers.get("ce-id"), operation="process"
        ):
            try:
                decoded = decode(request.data or b"{}", endpoint.request)
                reply = await endpoint.handler(decoded)
            except SchemaError as exc:
                await _respond_error(request, ApiError(code="bad_request", message=str(exc), field=exc.path))
                return
            except ApiFailure as exc:
                await _respond_error(request, exc.error)
                return
            except Exception:  # noqa: BLE001 - logged here; the caller gets an id, never internals
                error_id = uuid.uuid4().hex[:12]
                logger.error("endpoint %s failed (error id %s)", endpoint.name, error_id, exc_info=True)
                await _respond_error(
                    request,
                    ApiError(code="internal", message=f"internal error in {service_name}; error id {error_id}"),
                )
                return
            await request.respond(encode(reply))

    return handle


async def _respond_error(request: Request, error: ApiError) -> None:
    await request.respond_error(_STATUS_BY_CODE.get(error.code, "500"), error.message, data=encode(ErrorReply(error=error)))


async def start_service(
    nc: NATS,
    *,
    name: str,
    version: str,
    description: str,
    endpoints: list[Endpoint],
    queue_group: str | None = None,
) -> Service:
    """Register a micro service with its endpoints; processes of one service share a queue group."""
    service = await add_service(
        nc, ServiceConfig(name=name, version=version, description=description, queue_group=queue_group or name)
    )
    for endpoint in endpoints:
        await service.add_endpoint(
            EndpointConfig(
                name=endpoint.name,
                subject=endpoint.subject,
                handler=_wrap(endpoint, name),
                metadata={"description": endpoint.description} if endpoint.description else None,
            )
        )
    # Subscriptions reach the server asynchronously; flush so a request sent right
    # after this returns finds a responder instead of "no responders".
    await nc.flush()
    logger.info("service %s %s started with %d endpoints", name, version, len(endpoints))
    return service


async def call(nc: NATS, subject: str, message: Any, reply: type[T], *, timeout: float = 5.0) -> T:
    """Send a request and decode the reply into `reply`.

    Raises ApiCallError for an error reply (`code` from the service), for no
    responders (`unavailable`) and for a timeout (`timeout`).
    """
    headers = tracing.inject({"content-type": "application/json"})
    try:
        response = await nc.request(subject, encode(message), timeout=timeout, headers=headers)
    except nats.errors.NoRespondersError as exc:
        error = ApiError(code="unavailable", message=f"no service replies on {subject}; is it running?")
        raise ApiCallError(error, subject=subject) from exc
    except (nats.errors.TimeoutError, TimeoutError) as exc:
        error = ApiError(code="timeout", message=f"no reply on {subject} within {timeout}s")
        raise ApiCallError(error, subject=subject) from exc

    if response.headers and response.headers.get("Nats-Service-Error-Code"):
        try:
            error = decode(response.data, ErrorReply).error
        except SchemaError:
            error = ApiError(code="internal", message=response.headers.get("Nats-Service-Error", "unknown error"))
        raise ApiCallError(error, subject=subject)
    return decode(response.data, reply)


async def discover_services(nc: NATS, timeout: float = 0.5) -> dict[str, int]:
    """Return the micro services that reply to `$SRV.PING`, with the number of instances of each."""
    import json

    inbox = nc.new_inbox()
    counts: dict[str, int] = {}
    subscription = await nc.subscribe(inbox)
    await nc.publish("$SRV.PING", b"", reply=inbox)
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=timeout)
            except (nats.errors.TimeoutError, TimeoutError):
                break
            try:
                name = json.loads(message.data).get("name", "")
            except ValueError:
                continue
            if name:
                counts[name] = counts.get(name, 0) + 1
    finally:
        await subscription.unsubscribe()
    return counts

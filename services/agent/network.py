"""Round-trip times to the NATS server and to peer agents, and this agent's ping responder."""

from __future__ import annotations

import logging
import time

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from continuum.shared import subjects
from continuum.shared.schemas import encode
from continuum.shared.schemas.telemetry import RttSample

logger = logging.getLogger(__name__)


async def serve_ping(nc: NATS, node_id: str, boot_id: str) -> Subscription:
    """Answer `ctm.agent.<node_id>.ping` with this node's id, so peers can measure their RTT to it."""
    body = encode({"node_id": node_id, "boot_id": boot_id})

    async def _handle_ping(msg: Msg) -> None:
        if msg.reply:
            await msg.respond(body)

    return await nc.subscribe(subjects.agent_ping(node_id), cb=_handle_ping)


async def nats_rtt(nc: NATS, server: str) -> RttSample | None:
    """Measure the RTT to the NATS server with a PING/PONG round trip."""
    try:
        seconds = await nc.rtt()
    except (nats.errors.Error, TimeoutError) as exc:
        logger.warning("NATS RTT measurement failed: %s", exc)
        return None
    return RttSample(target=server, kind="nats", rtt_ms=seconds * 1000.0)


class PeerProber:
    """Measures RTT to peer agents; logs an unreachable peer once until it answers again."""

    def __init__(self, nc: NATS, peers: list[str], timeout: float) -> None:
        self.nc = nc
        self.peers = peers
        self.timeout = timeout
        self._unreachable: set[str] = set()

    async def measure(self) -> list[RttSample]:
        samples = []
        for peer in self.peers:
            started = time.perf_counter()
            try:
                await self.nc.request(subjects.agent_ping(peer), b"", timeout=self.timeout)
            except (nats.errors.NoRespondersError, nats.errors.TimeoutError, TimeoutError) as exc:
                if peer not in self._unreachable:
                    logger.warning("peer %s did not answer its ping: %s", peer, type(exc).__name__)
                    self._unreachable.add(peer)
                continue
            self._unreachable.discard(peer)
            samples.append(RttSample(target=peer, kind="node", rtt_ms=(time.perf_counter() - started) * 1000.0))
        return samples

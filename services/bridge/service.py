"""Wiring of the bridge: the HTTP server, the management service and the outbound consumers."""

from __future__ import annotations

import asyncio
import logging

import msgspec
from aiohttp import web
from nats.micro import Service as MicroService

from continuum.services.bridge.access import AccessLog, access_logger
from continuum.services.bridge.api import WebhooksApi
from continuum.services.bridge.errors import SettingsError
from continuum.services.bridge.inbound import InboundApp
from continuum.services.bridge.outbound import Deliverer, FanOut
from continuum.services.bridge.settings import BridgeSettings, load_bridge_settings
from continuum.services.bridge.subscriptions import SubscriptionStore
from continuum.services.bridge.targets import TargetPolicy, parse_networks
from continuum.shared import __version__
from continuum.shared.bus import DurableConsumer
from continuum.shared.rpc import start_service
from continuum.shared.runtime import ServiceContext
from continuum.shared.schemas.hook import DeliveryTask
from continuum.shared.topology import find_consumer

logger = logging.getLogger(__name__)

FAN_OUT_CONSUMERS = ("bridge-placements", "bridge-ingest-status", "bridge-guard-blocked", "bridge-hooks")
DELIVERY_CONSUMER = "bridge-deliveries"


class BridgeService:
    """Runs inbound and outbound webhooks in one process; `settings` overrides the [bridge] config (tests)."""

    def __init__(self, settings: BridgeSettings | None = None) -> None:
        self._settings = settings
        self.settings: BridgeSettings | None = None
        self.inbound: InboundApp | None = None
        self.store: SubscriptionStore | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._micro: MicroService | None = None
        self._deliverer: Deliverer | None = None
        self._consumers: list[DurableConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._context: ServiceContext | None = None

    async def start(self, context: ServiceContext) -> None:
        self._context = context
        settings = self._settings or load_bridge_settings(context.config_path)
        self.settings = settings
        policy = TargetPolicy(parse_networks(settings.allowed_target_networks))

        self.store = SubscriptionStore(context.js)
        await self.store.start()
        api = WebhooksApi(context.js, self.store, policy)
        self._micro = await start_service(
            context.nc, name="bridge", version=__version__, description="Webhook subscriptions and delivery attempts.", endpoints=api.endpoints()
        )
        if settings.deliveries_enabled:
            await self._start_outbound(context, settings, policy)
        await self._start_http(context, settings)

    async def _start_outbound(self, context: ServiceContext, settings: BridgeSettings, policy: TargetPolicy) -> None:
        assert self.store is not None
        for durable in FAN_OUT_CONSUMERS:
            spec = find_consumer(durable)
            handler = FanOut(context.js, self.store, source=context.source, stream=spec.stream)
            self._consumers.append(DurableConsumer(context.js, spec, msgspec.Raw, handler, service="bridge", concurrency=8))

        self._deliverer = Deliverer(context.js, self.store, policy, settings, source=context.source)
        await self._deliverer.start()
        self._consumers.append(
            DurableConsumer(
                context.js,
                find_consumer(DELIVERY_CONSUMER),
                DeliveryTask,
                self._deliverer,
                service="bridge",
                concurrency=settings.delivery_concurrency,
            )
        )
        for consumer in self._consumers:
            self._tasks.append(asyncio.create_task(consumer.run(), name=f"bridge-{consumer.spec.durable}"))

    async def _start_http(self, context: ServiceContext, settings: BridgeSettings) -> None:
        self.inbound = InboundApp(settings, context.js, source=context.source, ready=self._ready)
        self._runner = web.AppRunner(
            self.inbound.build(), access_log=access_logger, access_log_class=AccessLog, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise SettingsError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
                f"stop what uses the port or set CONTINUUM_BRIDGE_PORT (or [bridge] port)"
            ) from exc
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else settings.port
        logger.info(
            "webhook bridge listening on http://%s:%d with sources %s on the %s event loop",
            settings.host,
            self.port,
            ", ".join(sorted(settings.sources)) or "(none)",
            type(asyncio.get_running_loop()).__module__.split(".")[0],
        )

    async def _ready(self) -> bool:
        if self._context is None or not self._context.nc.is_connected:
            return False
        try:
            await self._context.js.stream_info("HOOKS")
        except Exception:  # noqa: BLE001 - any failure means not ready
            return False
        return True

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        for consumer in self._consumers:
            await consumer.stop()
        # A fetch in flight during stop() may still dispatch messages: let the loops end, then wait for those too.
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=3.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.stop()
        if self._deliverer is not None:
            await self._deliverer.stop()
        if self._micro is not None:
            await self._micro.stop()
        if self.store is not None:
            await self.store.stop()
        logger.info("webhook bridge stopped")

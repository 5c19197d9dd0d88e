"""The FastAPI application: create_app(settings) and the lifespan that owns resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import Depends, FastAPI

from raxx_queue import __version__
from raxx_queue.api import (
    audit,
    checkout,
    customers,
    erasure,
    health,
    invoices,
    mirror,
    portal,
    reconcile,
    subscribe,
    subscriptions,
    webhook,
)
from raxx_queue.api.deps import Services, Workers, require_billing_enabled
from raxx_queue.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from raxx_queue.api.read_lane import SubscriptionReadLane
from raxx_queue.api.webhook_lane import WebhookLane
from raxx_queue.audit.sealer import AuditSealer
from raxx_queue.billing.grace import GraceExpiryJob
from raxx_queue.db.migrate import SchemaHead, find_migrations_dir, plan_head
from raxx_queue.db.pool import Database
from raxx_queue.errors import error_responses, install_error_handlers
from raxx_queue.heap import freeze_startup_objects
from raxx_queue.jsonio import FastJSONResponse
from raxx_queue.logs import configure_logging
from raxx_queue.mirror.dispatcher import DispatcherConfig, build_mirror_dispatcher
from raxx_queue.sentry import init_sentry
from raxx_queue.settings import ConfigError, Settings, load_settings
from raxx_queue.stripe_gateway import StripeGateway, build_stripe_gateway
from raxx_queue.wakeups import Wakeups
from raxx_queue.webhooks.catchup_worker import CatchupConfig, EventCatchup
from raxx_queue.webhooks.retention import EventRetentionJob

# Routes are matched in this order: the hot paths (Stripe's deliveries, the paywall's
# read) first.
BILLING_ROUTERS = (
    webhook.router,
    subscriptions.router,
    customers.router,
    invoices.router,
    audit.router,
    subscribe.router,
    checkout.router,
    portal.router,
    reconcile.router,
    mirror.router,
    erasure.router,
)


def _schema_head(settings: Settings) -> SchemaHead | None:
    try:
        return plan_head(find_migrations_dir(settings.queue_migrations_dir))
    except ConfigError:
        return None


def background_workers(
    settings: Settings,
    db: Database,
    wakeups: Wakeups,
    mirror_config: DispatcherConfig | None = None,
    *,
    stripe: StripeGateway | None = None,
    catchup_config: CatchupConfig | None = None,
) -> Workers:
    """The in-process jobs every web process runs (each safe with several processes)."""
    key = settings.billing_audit_hmac_key
    catchup = None
    if stripe is not None and settings.event_catchup_enabled:
        catchup = EventCatchup(db, stripe, settings, catchup_config)
    return Workers(
        sealer=AuditSealer(
            db,
            key.get_secret_value().encode() if key else None,
            wakeups.audit,
            enabled=settings.flag_billing_audit_writes,
        ),
        grace=GraceExpiryJob(db),
        catchup=catchup,
        mirror=build_mirror_dispatcher(settings, db, wakeups.mirror, mirror_config),
        retention=(
            EventRetentionJob(db, settings.event_payload_retention_days)
            if settings.event_payload_retention_days > 0
            else None
        ),
    )


def create_app(
    settings: Settings,
    *,
    stripe_transport: httpx.AsyncBaseTransport | None = None,
    mirror_config: DispatcherConfig | None = None,
    catchup_config: CatchupConfig | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """Build the app; resources are opened by the lifespan, never at import time.

    `stripe_transport` replaces the network under the Stripe gateway, `mirror_config`
    and `catchup_config` tune the mirror dispatcher and the event catch-up (tests).
    `freeze_heap`, for a serving process: once started, its start-up objects are
    frozen out of the garbage collector's full passes (heap.py).
    """
    configure_logging(settings)
    init_sentry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.database_dsn()
        if dsn is None:
            raise ConfigError("DATABASE_URL: not set (the CLI starts an embedded database)")
        wakeups = Wakeups()
        db = Database(
            dsn,
            max_size=settings.database_pool_size,
            on_commit=wakeups.after_commit,
            mode=settings.database_pool_mode,
        )
        await db.open()
        gateway = build_stripe_gateway(settings, stripe_transport)
        workers = background_workers(
            settings, db, wakeups, mirror_config, stripe=gateway, catchup_config=catchup_config
        )
        app.state.services = Services(
            settings=settings,
            db=db,
            schema_head=_schema_head(settings),
            stripe=gateway,
            wakeups=wakeups,
            workers=workers,
        )
        running = workers.running()
        for worker in running:
            worker.start()
        if freeze_heap:
            freeze_startup_objects()
        try:
            yield
        finally:
            for worker in reversed(running):
                await worker.stop()
            if gateway is not None:
                await gateway.aclose()
            await db.close()

    # production does not publish its API's map (internal routes included)
    published = not settings.is_production
    app = FastAPI(
        title="Queue",
        version=__version__,
        description="Billing authority of the Raxx platform.",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
        docs_url="/docs" if published else None,
        redoc_url="/redoc" if published else None,
        openapi_url="/openapi.json" if published else None,
        # Queue exports no OpenTelemetry (Sentry and Prometheus): no per-request check
        # for a configured provider
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # innermost: Stripe's deliveries and subscription reads answered ahead of the
    # routing (api/webhook_lane.py, api/read_lane.py)
    app.add_middleware(SubscriptionReadLane, route=subscriptions.read_route())
    app.add_middleware(WebhookLane, route=webhook.delivery_route())
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    gate = [Depends(require_billing_enabled)]
    for router in BILLING_ROUTERS:
        app.include_router(router, dependencies=gate, responses=error_responses(503))
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for worker processes: settings from the environment."""
    return create_app(load_settings(), freeze_heap=True)

"""Shared fixtures: a real Postgres migrated by real sqitch, the app, captured logs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import stripe
from fastapi import FastAPI

from raxx_queue.api.deps import Services, app_services
from raxx_queue.app import create_app
from raxx_queue.log_limits import REFUSED_REQUEST_LINES, SECURITY_EVENTS
from raxx_queue.settings import Settings
from raxx_queue.simulator.double import StripeDouble
from tests.support import values
from tests.support.database import (
    create_database,
    drop_database,
    migrate,
    server_url,
    truncate_all,
)
from tests.support.log_hygiene import SESSION_LOGS
from tests.support.logs import CapturedLogs
from tests.support.pgbouncer import PgBouncer, running_pgbouncer


def pytest_configure(config: pytest.Config) -> None:
    """Collect every log line of the session for the log-hygiene check."""
    SESSION_LOGS.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    SESSION_LOGS.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`session_end` tests read what the whole session did: they run last."""
    last = [item for item in items if item.get_closest_marker("session_end")]
    items[:] = [item for item in items if not item.get_closest_marker("session_end")] + last


@pytest.fixture(scope="session")
def pg_server() -> str:
    return server_url()


@pytest.fixture(scope="session")
async def database_url(pg_server: str) -> AsyncIterator[str]:
    url = await create_database(pg_server)
    migrate(url)
    yield url
    await drop_database(pg_server, url)


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the test server, once per session:
    `pgbouncer.url_for(clean_db)` reaches the same database through it."""
    with running_pgbouncer(pg_server) as bouncer:
        yield bouncer


@pytest.fixture
async def clean_db(database_url: str) -> str:
    await truncate_all(database_url)
    return database_url


@pytest.fixture
async def db(clean_db: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A direct connection for seeding and asserting rows."""
    conn = await asyncpg.connect(clean_db)
    yield conn
    await conn.close()


def make_settings(database_url: str | None, **overrides: Any) -> Settings:
    config: dict[str, Any] = {
        "queue_env": "test",
        "database_url": database_url,
        "web_concurrency": 1,
        "flag_queue_billing": True,
        "flag_billing_audit_writes": True,
        "stripe_restricted_key": values.STRIPE_KEY,
        "stripe_webhook_secret": values.WEBHOOK_SECRET,
        "stripe_thin_webhook_secret": values.THIN_WEBHOOK_SECRET,
        # the catch-up worker would list the double's events at every app start: tests
        # of it turn it on
        "stripe_event_catchup_seconds": 0,
        "stripe_price_id_pro": values.PRICE_PRO,
        "stripe_price_id_pro_plus": values.PRICE_PRO_PLUS,
        "queue_service_token_raptor": values.RAPTOR_TOKEN,
        "queue_service_token_console": values.CONSOLE_TOKEN,
        "metrics_token": values.METRICS_TOKEN,
        "billing_audit_hmac_key": values.AUDIT_KEY,
        "raptor_mirror_token": values.MIRROR_TOKEN,
        "raptor_mirror_signing_secret": values.MIRROR_SIGNING_SECRET,
        "portal_return_url": "https://app.raxx.test/billing",
        "checkout_success_url": "https://app.raxx.test/billing/success",
        "checkout_cancel_url": "https://app.raxx.test/billing/cancel",
        "log_format": "json",
        "log_level": "DEBUG",
    }
    config.update(overrides)
    return Settings(**config)


@pytest.fixture
def settings(clean_db: str) -> Settings:
    return make_settings(clean_db)


class AppClient(httpx.AsyncClient):
    """An HTTP client to the app in process, with typed access to what its lifespan owns
    (the database, the background workers, the wake-ups)."""

    def __init__(self, app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        super().__init__(transport=transport, base_url="http://queue.test")
        self.app = app

    @property
    def services(self) -> Services:
        return app_services(self.app)


AppFactory = Callable[..., AbstractAsyncContextManager[AppClient]]


@asynccontextmanager
async def running_app(settings: Settings, **app_options: Any) -> AsyncIterator[AppClient]:
    """The app with its lifespan running, behind an in-process HTTP client."""
    app = create_app(settings, **app_options)
    async with app.router.lifespan_context(app), AppClient(app) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_log_limits() -> None:
    """Each test starts with full log and Sentry allowances (they are per process)."""
    REFUSED_REQUEST_LINES.reset()
    SECURITY_EVENTS.reset()


@pytest.fixture(autouse=True)
def instant_stripe_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK still retries (twice); only its 0.5-2 s backoff between attempts is zeroed."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0)


@pytest.fixture
def stripe_double() -> StripeDouble:
    """The Stripe API every app built by these fixtures talks to."""
    return StripeDouble(api_key=values.STRIPE_KEY)


@pytest.fixture
async def client(settings: Settings, stripe_double: StripeDouble) -> AsyncIterator[AppClient]:
    async with running_app(settings, stripe_transport=stripe_double.transport) as client:
        yield client


@pytest.fixture
def app_factory(clean_db: str, stripe_double: StripeDouble) -> AppFactory:
    """Build an app with settings overrides: `async with app_factory(flag_queue_billing=False)`."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(clean_db, **overrides)
        return running_app(settings, stripe_transport=stripe_double.transport)

    return factory


@pytest.fixture
def captured_logs() -> Iterator[CapturedLogs]:
    handler = CapturedLogs()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)

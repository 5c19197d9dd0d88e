"""Liveness and readiness."""

from __future__ import annotations

import asyncpg
import httpx

from raxx_queue import __version__
from raxx_queue.db.migrate import plan_head
from raxx_queue.simulator.double import StripeDouble
from tests.conftest import make_settings, running_app
from tests.support import values
from tests.support.database import (
    MIGRATIONS,
    PRODUCTION_OVERRIDES,
    create_database,
    drop_database,
    migrate,
    production_url,
)


async def test_health_reports_database_and_flag(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "service": "queue",
        "version": __version__,
        "database": "ok",
        "billing_enabled": True,
        "stripe_events": {
            "catchup": "off",
            "lag_seconds": None,
            "checked_at": None,
            "last_run": None,
        },
    }
    assert response.headers["x-request-id"]


async def test_ready_when_migrated(client: httpx.AsyncClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200
    assert response.json()["schema"] == plan_head(MIGRATIONS).change


async def test_not_ready_on_an_unmigrated_database(pg_server: str) -> None:
    url = await create_database(pg_server, prefix="queue_empty")
    try:
        async with running_app(make_settings(url)) as client:
            response = await client.get("/ready")
            assert response.status_code == 503
            assert (await client.get("/health")).json()["database"] == "ok"
    finally:
        await drop_database(pg_server, url)


async def test_database_unreachable(clean_db: str) -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/nowhere")
    async with running_app(settings) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["database"] == "unavailable"
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
        read = await client.get(
            "/api/v1/billing/customers", headers={"Authorization": "Bearer " + "x" * 20}
        )
        assert read.status_code == 401


async def test_not_ready_when_a_change_is_missing_under_the_same_head_name(
    pg_server: str,
) -> None:
    """A reworked change repeats its name: the head's name alone cannot tell the schema of
    the previous release from this one, the number of changes deployed does."""
    url = await create_database(pg_server, prefix="queue_behind")
    try:
        migrate(url)
        conn = await asyncpg.connect(url)
        try:
            # as if the change before the head had never been deployed (the head may
            # name it as a dependency)
            before_head = await conn.fetchval(
                "SELECT change_id FROM sqitch.changes ORDER BY committed_at DESC OFFSET 1 LIMIT 1"
            )
            await conn.execute(
                "DELETE FROM sqitch.dependencies WHERE dependency_id = $1", before_head
            )
            await conn.execute("DELETE FROM sqitch.changes WHERE change_id = $1", before_head)
        finally:
            await conn.close()
        async with running_app(make_settings(url)) as client:
            response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "NOT_MIGRATED"
        head = plan_head(MIGRATIONS)
        assert f"{head.change} ({head.changes - 1} changes)" in response.json()["error"]["message"]
    finally:
        await drop_database(pg_server, url)


async def test_production_publishes_no_api_map_and_a_minimal_health(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    """Finding 8: no /docs, /redoc, /openapi.json; /health without a token is liveness only."""
    settings = make_settings(production_url(clean_db), **PRODUCTION_OVERRIDES)
    async with running_app(settings, stripe_transport=stripe_double.transport) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert (await client.get(path)).status_code == 404, path
        for headers in ({}, values.bearer("not-a-token-of-anyone-1234")):
            anonymous = await client.get("/health", headers=headers)
            assert anonymous.status_code == 200
            assert anonymous.json() == {"status": "ok", "service": "queue", "database": "ok"}
        for headers in (values.CONSOLE, values.RAPTOR, values.METRICS):
            known = await client.get("/health", headers=headers)
            assert known.json()["version"] == __version__
            assert known.json()["billing_enabled"] is True


async def test_outside_production_the_api_map_is_published(client: httpx.AsyncClient) -> None:
    schema = await client.get("/openapi.json")
    assert schema.status_code == 200
    assert "/api/internal/billing/reconcile" in schema.json()["paths"]
    assert (await client.get("/docs")).status_code == 200

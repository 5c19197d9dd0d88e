"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from raxx_queue import __version__
from raxx_queue.api.deps import AnyCaller, ServicesDep
from raxx_queue.db.migrate import HEAD_SQL, SQITCH_PROJECT
from raxx_queue.db.pool import UNAVAILABLE
from raxx_queue.errors import DatabaseUnavailable
from raxx_queue.jsonio import FastJSONResponse
from raxx_queue.metrics import render_latest

router = APIRouter()


@router.get("/health")
async def health(services: ServicesDep) -> dict[str, Any]:
    """Liveness: 200 while the process serves, whatever the database says."""
    database_ok = await services.db.ping()
    return {
        "status": "ok",
        "service": "queue",
        "version": __version__,
        "database": "ok" if database_ok else "unavailable",
        "billing_enabled": services.settings.flag_queue_billing,
    }


@router.get("/ready")
async def ready(services: ServicesDep) -> FastJSONResponse:
    """Readiness: the database answers and carries the schema this build expects."""
    expected = services.schema_head
    try:
        async with services.db.connection(timeout=2.0) as conn:
            head = await conn.fetchval(HEAD_SQL, SQITCH_PROJECT, timeout=2.0)
    except UNAVAILABLE:
        raise DatabaseUnavailable() from None
    except Exception:  # the sqitch registry is missing: never migrated
        head = None
    migrated = head is not None and (expected is None or head == expected)
    body = {"status": "ready" if migrated else "not_migrated", "schema": head}
    return FastJSONResponse(body, status_code=200 if migrated else 503)


@router.get("/metrics")
async def metrics(_caller: AnyCaller) -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)

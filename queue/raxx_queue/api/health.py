"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from raxx_queue import __version__
from raxx_queue.api.deps import MetricsReader, ServicesDep, known_caller
from raxx_queue.db.migrate import NotMigrated, deployed_head
from raxx_queue.db.pool import UNAVAILABLE
from raxx_queue.errors import DatabaseUnavailable, error_responses
from raxx_queue.metrics import render_latest
from raxx_queue.webhooks.catchup_worker import catchup_health

router = APIRouter()


@router.get("/health")
async def health(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Liveness: 200 while the process serves, whatever the database says.

    `stripe_events` reports how far Queue trails Stripe (as the last catch-up run
    measured it): an alarm for operators, not a reason to stop serving, so `/ready`
    leaves it out. In production only a caller with a token sees the version, the flag
    and the lag; anyone else gets the liveness alone."""
    database_ok = await services.db.ping()
    settings = services.settings
    if settings.is_production and known_caller(request) is None:
        return {"status": "ok", "service": "queue", "database": _database(database_ok)}
    return {
        "status": "ok",
        "service": "queue",
        "version": __version__,
        "database": _database(database_ok),
        "billing_enabled": settings.flag_queue_billing,
        "stripe_events": (
            await catchup_health(services.db, enabled=settings.event_catchup_enabled)
            if database_ok
            else None
        ),
    }


def _database(ok: bool) -> str:
    return "ok" if ok else "unavailable"


@router.get("/ready", responses=error_responses(503))
async def ready(services: ServicesDep) -> dict[str, Any]:
    """Readiness: the database answers and carries the schema this build expects."""
    expected = services.schema_head
    try:
        async with services.db.connection(timeout=2.0) as conn:
            head = await deployed_head(conn, timeout=2.0)
    except UNAVAILABLE:
        raise DatabaseUnavailable() from None
    if head is None or (expected is not None and head != expected):
        raise NotMigrated(head, expected)
    return {"status": "ready", "schema": head.change}


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        # errors stay JSON whatever the route's own media type
        401: {
            "description": "missing or unknown service token",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
    },
)
async def metrics(_caller: MetricsReader) -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)

"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from raxx_queue import __version__
from raxx_queue.api.deps import AnyCaller, ServicesDep
from raxx_queue.db.migrate import HEAD_SQL, SQITCH_PROJECT
from raxx_queue.db.pool import UNAVAILABLE
from raxx_queue.errors import DatabaseUnavailable, ServiceError, error_responses
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


class NotMigrated(ServiceError):
    status = 503
    code = "NOT_MIGRATED"

    def __init__(self, head: str | None, expected: str | None) -> None:
        super().__init__(
            f"database schema is at {head or 'nothing'}; this build expects {expected}"
        )


@router.get("/ready", responses=error_responses(503))
async def ready(services: ServicesDep) -> dict[str, Any]:
    """Readiness: the database answers and carries the schema this build expects."""
    expected = services.schema_head
    try:
        async with services.db.connection(timeout=2.0) as conn:
            head = await conn.fetchval(HEAD_SQL, SQITCH_PROJECT, timeout=2.0)
    except UNAVAILABLE:
        raise DatabaseUnavailable() from None
    except Exception:  # the sqitch registry is missing: never migrated
        head = None
    if head is None or (expected is not None and head != expected):
        raise NotMigrated(head, expected)
    return {"status": "ready", "schema": head}


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
async def metrics(_caller: AnyCaller) -> Response:
    body, content_type = render_latest()
    return Response(body, media_type=content_type)

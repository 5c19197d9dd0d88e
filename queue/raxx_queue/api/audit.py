"""GET /api/internal/billing/audit/verify (Console)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from raxx_queue.api.deps import ConsoleOnly, ServicesDep
from raxx_queue.audit.chain import verify_chain
from raxx_queue.errors import ServiceError, error_responses

router = APIRouter(
    prefix="/api/internal/billing/audit", tags=["audit"], responses=error_responses(401, 403)
)


class AuditKeyMissing(ServiceError):
    status = 503
    code = "AUDIT_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("BILLING_AUDIT_HMAC_KEY is not configured")


@router.get("/verify")
async def verify_audit_chain(_caller: ConsoleOnly, services: ServicesDep) -> dict[str, Any]:
    key = services.settings.billing_audit_hmac_key
    if key is None:
        raise AuditKeyMissing()
    async with services.db.connection() as conn:
        report = await verify_chain(conn, key.get_secret_value().encode())
    return report.as_dict()

"""GET /api/internal/billing/audit/verify (Console)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from raxx_queue.api.deps import Operator, ServicesDep
from raxx_queue.audit.chain import AuditKeyMissing, verify_chain
from raxx_queue.errors import error_responses

router = APIRouter(
    prefix="/api/internal/billing/audit", tags=["audit"], responses=error_responses(401, 403)
)


@router.get("/verify")
async def verify_audit_chain(_caller: Operator, services: ServicesDep) -> dict[str, Any]:
    key = services.settings.billing_audit_hmac_key
    if key is None:
        raise AuditKeyMissing()
    async with services.db.connection() as conn:
        report = await verify_chain(conn, key.get_secret_value().encode())
    return report.as_dict()

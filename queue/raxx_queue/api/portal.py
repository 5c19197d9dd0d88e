"""POST /api/v1/billing/portal (Raptor only)."""

from __future__ import annotations

from fastapi import APIRouter

from raxx_queue.api.deps import PaymentPagesBilling
from raxx_queue.billing import sessions
from raxx_queue.billing.flow_schemas import PortalRequest, PortalResponse
from raxx_queue.errors import error_responses
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES

router = APIRouter(
    prefix="/api/v1/billing/portal",
    tags=["portal"],
    responses=error_responses(401, 403, 413, *STRIPE_ERROR_STATUSES),
)


@router.post("")
async def create_portal(body: PortalRequest, ctx: PaymentPagesBilling) -> PortalResponse:
    return await sessions.create_portal(ctx, body)

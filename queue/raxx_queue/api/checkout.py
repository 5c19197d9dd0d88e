"""POST /api/v1/billing/checkout (Raptor only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from raxx_queue.api.deps import PaymentPagesBilling
from raxx_queue.billing import sessions
from raxx_queue.billing.flow_schemas import CheckoutRequest, CheckoutResponse
from raxx_queue.errors import error_responses
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES

router = APIRouter(
    prefix="/api/v1/billing/checkout",
    tags=["checkout"],
    responses=error_responses(401, 403, 413, *STRIPE_ERROR_STATUSES),
)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_checkout(body: CheckoutRequest, ctx: PaymentPagesBilling) -> CheckoutResponse:
    return await sessions.create_checkout(ctx, body)

"""POST /api/v1/billing/subscribe (Raptor only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from raxx_queue.api.deps import PaymentPagesBilling
from raxx_queue.billing.flow_schemas import SubscribeRequest, SubscribeResponse
from raxx_queue.billing.subscribe import subscribe as start_subscription
from raxx_queue.errors import error_responses
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES

router = APIRouter(
    prefix="/api/v1/billing/subscribe",
    tags=["subscriptions"],
    responses=error_responses(401, 403, 413, *STRIPE_ERROR_STATUSES),
)


@router.post("", status_code=status.HTTP_201_CREATED)
async def subscribe(body: SubscribeRequest, ctx: PaymentPagesBilling) -> SubscribeResponse:
    return await start_subscription(ctx, body)

"""Current subscription of a customer (Raptor's paywall and Console)."""

from __future__ import annotations

from fastapi import APIRouter

from raxx_queue.api.deps import AnyCaller, DatabaseDep, QueueCustomerId
from raxx_queue.billing import reads
from raxx_queue.billing.schemas import SubscriptionSummary
from raxx_queue.errors import error_responses

router = APIRouter(
    prefix="/api/v1/billing/subscriptions",
    tags=["subscriptions"],
    responses=error_responses(401, 404, 422),
)


@router.get("/{queue_customer_id}")
async def get_subscription(
    queue_customer_id: QueueCustomerId, _caller: AnyCaller, db: DatabaseDep
) -> SubscriptionSummary:
    async with db.connection() as conn:
        return await reads.get_subscription(conn, queue_customer_id)

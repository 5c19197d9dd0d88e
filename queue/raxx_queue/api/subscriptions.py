"""Current subscription of a customer (Raptor's paywall and Console)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute

from raxx_queue.api.deps import BillingReader, DatabaseDep, QueueCustomerId
from raxx_queue.billing import reads
from raxx_queue.billing.schemas import SubscriptionSummary
from raxx_queue.errors import error_responses

router = APIRouter(
    prefix="/api/v1/billing/subscriptions",
    tags=["subscriptions"],
    responses=error_responses(401, 404, 422),
)


@router.get("/{queue_customer_id}", response_model=SubscriptionSummary)
async def get_subscription(
    queue_customer_id: QueueCustomerId, _caller: BillingReader, db: DatabaseDep
) -> Response:
    async with db.connection() as conn:
        summary = await reads.get_subscription(conn, queue_customer_id)
    # the paywall's hot path: the model is validated once, when built, and rendered by
    # pydantic-core as FastAPI would (FastAPI would validate it again first)
    return Response(summary.model_dump_json(), media_type="application/json")


def read_route() -> APIRoute:
    """The declared route of a subscription read (api/read_lane.py answers it in order)."""
    return next(
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint is get_subscription
    )

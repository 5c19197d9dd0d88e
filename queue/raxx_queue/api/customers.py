"""Billing customers: Console/Raptor reads and create-or-return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from raxx_queue.api.deps import BillingReader, CustomerCreatorBilling, DatabaseDep, QueueCustomerId
from raxx_queue.billing import customers, reads
from raxx_queue.billing.flow_schemas import CreateCustomerRequest
from raxx_queue.billing.schemas import Customer, CustomerPage
from raxx_queue.errors import error_responses
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES
from raxx_queue.vocabulary import PlanTier, SubscriptionStatus

router = APIRouter(
    prefix="/api/v1/billing/customers", tags=["customers"], responses=error_responses(401, 422)
)


@router.get("")
async def list_customers(
    _caller: BillingReader,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: SubscriptionStatus | None = None,
    plan_tier: PlanTier | None = None,
) -> CustomerPage:
    async with db.connection() as conn:
        return await reads.list_customers(
            conn, limit=limit, cursor=cursor, status=status, plan_tier=plan_tier
        )


@router.get("/{queue_customer_id}", responses=error_responses(404))
async def get_customer(
    queue_customer_id: QueueCustomerId, _caller: BillingReader, db: DatabaseDep
) -> Customer:
    async with db.connection() as conn:
        return await reads.get_customer(conn, queue_customer_id)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {"model": Customer, "description": "already existed"},
        **error_responses(413, *STRIPE_ERROR_STATUSES),
    },
)
async def create_customer(
    body: CreateCustomerRequest, ctx: CustomerCreatorBilling, response: Response
) -> Customer:
    result = await customers.create_customer(ctx, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result.customer

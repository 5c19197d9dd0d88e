"""Billing customers: Console/Raptor reads and create-or-return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from raxx_queue.api.deps import (
    PERSONAL_FIELDS,
    BillingReader,
    Caller,
    CustomerCreator,
    CustomerCreatorBilling,
    DatabaseDep,
    QueueCustomerId,
    hidden_fields,
)
from raxx_queue.billing import customers, reads
from raxx_queue.billing.flow_schemas import CreateCustomerRequest
from raxx_queue.billing.schemas import Customer, CustomerPage, CustomerRecord
from raxx_queue.errors import error_responses
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES
from raxx_queue.vocabulary import PlanTier, SubscriptionStatus

router = APIRouter(
    prefix="/api/v1/billing/customers", tags=["customers"], responses=error_responses(401, 422)
)


def shown_to(caller: Caller, customer: CustomerRecord) -> CustomerRecord:
    """The customer as this caller may see it: a caller kept from any personal field
    (PERSONAL_FIELDS) gets the record without them."""
    if not hidden_fields(caller) or type(customer) is CustomerRecord:
        return customer
    return CustomerRecord.model_validate(customer.model_dump(exclude=set(PERSONAL_FIELDS)))


@router.get("")
async def list_customers(
    caller: BillingReader,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: SubscriptionStatus | None = None,
    plan_tier: PlanTier | None = None,
) -> CustomerPage:
    async with db.connection() as conn:
        page = await reads.list_customers(
            conn, limit=limit, cursor=cursor, status=status, plan_tier=plan_tier
        )
    return CustomerPage(data=[shown_to(caller, c) for c in page.data], next_cursor=page.next_cursor)


@router.get("/{queue_customer_id}", responses=error_responses(404))
async def get_customer(
    queue_customer_id: QueueCustomerId, caller: BillingReader, db: DatabaseDep
) -> Customer | CustomerRecord:
    async with db.connection() as conn:
        return shown_to(caller, await reads.get_customer(conn, queue_customer_id))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {"model": Customer | CustomerRecord, "description": "already existed"},
        **error_responses(413, *STRIPE_ERROR_STATUSES),
    },
)
async def create_customer(
    body: CreateCustomerRequest,
    caller: CustomerCreator,
    ctx: CustomerCreatorBilling,
    response: Response,
) -> Customer | CustomerRecord:
    result = await customers.create_customer(ctx, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    # an existing customer's stored e-mail is not told to a caller that may not see it
    return shown_to(caller, result.customer)

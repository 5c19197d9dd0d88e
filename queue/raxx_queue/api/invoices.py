"""Invoices of a customer, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from raxx_queue.api.deps import BillingReader, DatabaseDep, QueueCustomerId
from raxx_queue.billing import reads
from raxx_queue.billing.schemas import InvoicePage
from raxx_queue.errors import error_responses

router = APIRouter(
    prefix="/api/v1/billing/invoices", tags=["invoices"], responses=error_responses(401, 404, 422)
)


@router.get("/{queue_customer_id}")
async def list_invoices(
    queue_customer_id: QueueCustomerId,
    _caller: BillingReader,
    db: DatabaseDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> InvoicePage:
    async with db.connection() as conn:
        return await reads.list_invoices(conn, queue_customer_id, limit=limit, cursor=cursor)

"""POST /api/internal/billing/customers/{queue_customer_id}/erase (Console)."""

from __future__ import annotations

from fastapi import APIRouter

from raxx_queue.api.deps import EraserBilling, QueueCustomerId
from raxx_queue.billing.erasure import EraseRequest, ErasureReport, erase_customer
from raxx_queue.errors import error_responses

router = APIRouter(
    prefix="/api/internal/billing/customers",
    tags=["erasure"],
    responses=error_responses(400, 401, 403, 404, 409, 413, 422),
)


@router.post("/{queue_customer_id}/erase")
async def erase(
    queue_customer_id: QueueCustomerId, ctx: EraserBilling, body: EraseRequest | None = None
) -> ErasureReport:
    """Anonymise the customer's personal data everywhere Queue holds it; keep the
    financial record. `{"stripe": "delete"}` also deletes the Stripe customer."""
    return await erase_customer(ctx, queue_customer_id, body or EraseRequest())

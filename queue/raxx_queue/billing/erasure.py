"""Erasing one customer's personal data (a data-subject request), and optionally at Stripe.

Queue's erasure is one transaction under the customer's locks: billing_erase_customer
anonymises every personal field in place and leaves a tombstone, whose triggers keep
later events from bringing the data back; one PII-free `customer.erase` audit row.
The Stripe deletion follows the commit (no transaction waits on Stripe): when it fails,
Queue's erasure stands and the answer says the Stripe step is pending; asking again
retries it with the same idempotency key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict

from raxx_queue.audit.log import append_action
from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.errors import CustomerRelinking
from raxx_queue.db.erasure import (
    ErasedRows,
    StripeLinkChanged,
    erase_rows,
    fetch_erasure_target,
    stripe_customer_deleted,
)
from raxx_queue.db.locks import lock_queue_customer, lock_stripe_customer
from raxx_queue.errors import CustomerNotFound
from raxx_queue.stripe_errors import StripeGatewayError, StripeObjectMissing

log = structlog.get_logger(__name__)

# the Stripe link may change between reading it and locking it; it settles at once
LINK_ATTEMPTS = 3


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # "delete": also delete the Stripe customer
    stripe: Literal["delete"] | None = None


class ErasedCounts(BaseModel):
    """What was erased, by category and count (never the values)."""

    # fields of the customer row: emails, names, addresses
    customer: dict[str, int]
    # stored Stripe events redacted, and their fields by category
    event_payloads: int
    event_fields: dict[str, int]
    # invoices whose hosted-invoice link (a page showing name and address) was removed
    invoice_links: int


class StripeErasure(BaseModel):
    status: Literal["not_requested", "deleted", "pending", "no_stripe_customer"]
    stripe_customer_id: str | None = None
    # when pending: the error code of the failed attempt; ask again to retry
    error_code: str | None = None


class ErasureReport(BaseModel):
    queue_customer_id: str
    erased_at: datetime
    # erased by an earlier request: this one changed nothing Queue holds
    already_erased: bool
    erased: ErasedCounts
    stripe: StripeErasure


def erase_key(stripe_customer_id: str) -> str:
    """One deletion per Stripe customer, however often it is retried."""
    return f"erase:{stripe_customer_id}"


def _anything(counts: ErasedCounts) -> bool:
    return bool(
        counts.customer or counts.event_payloads or counts.event_fields or counts.invoice_links
    )


async def _erase_once(
    ctx: BillingContext, queue_customer_id: str, stripe_id: str | None
) -> ErasedRows:
    async with ctx.db.transaction() as tx:
        await lock_queue_customer(tx.conn, queue_customer_id)
        if stripe_id is not None:
            await lock_stripe_customer(tx.conn, stripe_id)
        rows = await erase_rows(tx.conn, queue_customer_id, stripe_id)
        if rows is None:
            raise CustomerNotFound()
        counts = ErasedCounts.model_validate(rows.erased)
        if not rows.already_erased or _anything(counts):
            await append_action(
                tx,
                actor=ctx.actor,
                action="customer.erase",
                queue_customer_id=queue_customer_id,
                stripe_object_id=stripe_id,
                request_id=ctx.request_id,
                summary={"erased": counts.model_dump(), "already_erased": rows.already_erased},
            )
    return rows


async def erase_in_queue(ctx: BillingContext, queue_customer_id: str) -> ErasedRows:
    """Anonymise the customer in one transaction under its locks; 404 when unknown."""
    for _ in range(LINK_ATTEMPTS):
        async with ctx.db.connection() as conn:
            exists, stripe_id = await fetch_erasure_target(conn, queue_customer_id)
        if not exists:
            raise CustomerNotFound()
        try:
            return await _erase_once(ctx, queue_customer_id, stripe_id)
        except StripeLinkChanged:
            continue
    raise CustomerRelinking()


async def delete_at_stripe(
    ctx: BillingContext, queue_customer_id: str, stripe_customer_id: str
) -> StripeErasure:
    """Delete the Stripe customer; a failure is reported as pending, not raised."""
    async with ctx.db.connection() as conn:
        deleted = await stripe_customer_deleted(conn, stripe_customer_id)
    try:
        if not deleted:  # Stripe's customer.deleted said so: nothing to ask Stripe
            await ctx.gateway().delete_customer(
                stripe_customer_id, idempotency_key=erase_key(stripe_customer_id)
            )
    except StripeObjectMissing:
        pass  # deleted already (by an earlier attempt, or at Stripe)
    except StripeGatewayError as error:
        if error.stripe_code == "resource_missing":
            return await _deleted(ctx, queue_customer_id, stripe_customer_id)
        log.warning(
            "erasure_stripe_pending", queue_customer_id=queue_customer_id, error_code=error.code
        )
        return StripeErasure(
            status="pending", stripe_customer_id=stripe_customer_id, error_code=error.code
        )
    return await _deleted(ctx, queue_customer_id, stripe_customer_id)


async def _deleted(
    ctx: BillingContext, queue_customer_id: str, stripe_customer_id: str
) -> StripeErasure:
    """Audit the Stripe deletion once, however often it is asked for."""
    async with ctx.db.transaction() as tx:
        await lock_stripe_customer(tx.conn, stripe_customer_id)
        await ctx.record_once(
            tx,
            action="customer.erase.stripe",
            queue_customer_id=queue_customer_id,
            stripe_object_id=stripe_customer_id,
            summary={"stripe_customer_id": stripe_customer_id, "deleted": True},
        )
    return StripeErasure(status="deleted", stripe_customer_id=stripe_customer_id)


async def erase_customer(
    ctx: BillingContext, queue_customer_id: str, request: EraseRequest
) -> ErasureReport:
    """Erase in Queue, then (when asked) at Stripe."""
    if request.stripe == "delete":
        ctx.gateway()  # 503 before anything is erased when Stripe is not configured
    rows = await erase_in_queue(ctx, queue_customer_id)
    counts = ErasedCounts.model_validate(rows.erased)
    log.info(
        "customer_erased",
        queue_customer_id=queue_customer_id,
        already_erased=rows.already_erased,
        event_payloads=counts.event_payloads,
    )
    stripe = StripeErasure(status="not_requested")
    if request.stripe == "delete":
        if rows.stripe_customer_id is None:
            stripe = StripeErasure(status="no_stripe_customer")
        else:
            stripe = await delete_at_stripe(ctx, queue_customer_id, rows.stripe_customer_id)
    return ErasureReport(
        queue_customer_id=queue_customer_id,
        erased_at=rows.erased_at,
        already_erased=rows.already_erased,
        erased=counts,
        stripe=stripe,
    )

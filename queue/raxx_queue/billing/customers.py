"""Creating billing customers and their Stripe customers (find-or-create, then link)."""

from __future__ import annotations

from dataclasses import dataclass

from raxx_queue.audit.log import append_action
from raxx_queue.billing import reads
from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.errors import CustomerLinkConflict
from raxx_queue.billing.flow_schemas import CreateCustomerRequest
from raxx_queue.billing.idempotency import customer_key
from raxx_queue.billing.schemas import Customer
from raxx_queue.db.customers import (
    CustomerLink,
    CustomerState,
    LinkConflict,
    fetch_customer_state,
    link_customer,
)
from raxx_queue.db.locks import lock_queue_customer, lock_stripe_customer
from raxx_queue.db.pool import Transaction
from raxx_queue.stripe_errors import StripeIdempotencyConflict
from raxx_queue.stripe_gateway import StripeGateway


@dataclass(frozen=True)
class StripeCustomer:
    id: str
    # as Stripe holds them when this request created the customer; None when it existed
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class CustomerResult:
    customer: Customer
    created: bool


async def read_state(ctx: BillingContext, queue_customer_id: str) -> CustomerState | None:
    async with ctx.db.connection() as conn:
        return await fetch_customer_state(conn, queue_customer_id)


async def ensure_stripe_customer(
    gateway: StripeGateway,
    queue_customer_id: str,
    state: CustomerState | None,
    *,
    email: str | None,
    name: str | None,
) -> StripeCustomer:
    """The queue customer's Stripe customer: the linked one, else one created idempotently."""
    if state is not None and state.live_stripe_customer_id is not None:
        return StripeCustomer(state.live_stripe_customer_id)
    replaces = state.stripe_customer_id if state is not None else None
    try:
        created = await gateway.create_customer(
            queue_customer_id=queue_customer_id,
            email=email,
            name=name,
            idempotency_key=customer_key(queue_customer_id, replaces=replaces),
        )
    except StripeIdempotencyConflict:
        # The key was used in the last 24 h with other details (an earlier attempt created
        # the customer, then failed later). That customer is the one to use.
        found = [
            customer
            for customer in await gateway.search_customers(queue_customer_id)
            if customer["id"] != replaces
        ]
        if len(found) != 1:
            raise
        created = found[0]
    return StripeCustomer(created["id"], created.get("email"), created.get("name"))


async def link_and_audit(
    tx: Transaction,
    ctx: BillingContext,
    queue_customer_id: str,
    stripe_customer: StripeCustomer | None,
    *,
    email: str | None,
    name: str | None,
) -> CustomerLink:
    """Create or link the customer row in the caller's transaction; audit what changed."""
    stripe_id = None
    if stripe_customer is not None:
        stripe_id = stripe_customer.id
        await lock_stripe_customer(tx.conn, stripe_id)
        # what Stripe stored is the truth the webhooks will confirm
        email, name = stripe_customer.email or email, stripe_customer.name or name
    else:
        await lock_queue_customer(tx.conn, queue_customer_id)
    try:
        link = await link_customer(tx.conn, queue_customer_id, stripe_id, email=email, name=name)
    except LinkConflict:
        raise CustomerLinkConflict() from None
    # exact under the lock: a replay finds the row created and linked already
    if link.created or link.linked:
        await append_action(
            tx,
            actor=ctx.actor,
            action="customer.create" if link.created else "customer.link",
            queue_customer_id=queue_customer_id,
            stripe_object_id=stripe_id,
            request_id=ctx.request_id,
            summary={"stripe_customer_id": stripe_id},
        )
    return link


async def create_customer(ctx: BillingContext, body: CreateCustomerRequest) -> CustomerResult:
    """Create-or-return; with Stripe configured the customer always has a Stripe customer."""
    queue_customer_id = body.queue_customer_id
    state = await read_state(ctx, queue_customer_id)
    needs_stripe = ctx.stripe is not None and (
        state is None or state.live_stripe_customer_id is None
    )
    stripe_customer = None
    if needs_stripe:
        stripe_customer = await ensure_stripe_customer(
            ctx.gateway(), queue_customer_id, state, email=body.email, name=body.name
        )
    async with ctx.db.transaction() as tx:
        link = CustomerLink(created=False, linked=False)
        if state is None or needs_stripe:
            link = await link_and_audit(
                tx, ctx, queue_customer_id, stripe_customer, email=body.email, name=body.name
            )
        customer = await reads.get_customer(tx.conn, queue_customer_id)
    return CustomerResult(customer=customer, created=link.created)

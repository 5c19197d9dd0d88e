"""The per-customer advisory locks every writer of a customer's rows takes first.

Transaction-scoped (pg_advisory_xact_lock): released at commit or rollback, never held
by an idle session. The webhook's SQL takes the same Stripe-customer lock
(billing_customer_lock_key) inside billing_apply_stripe_event.
"""

from __future__ import annotations

from raxx_queue.db.pool import Connection

LOCK_STRIPE_CUSTOMER = "SELECT pg_advisory_xact_lock(billing_customer_lock_key($1))"
# For writes that may come before any Stripe customer exists (Checkout, local customers).
LOCK_QUEUE_CUSTOMER = (
    "SELECT pg_advisory_xact_lock(hashtextextended('billing_queue_customer:' || $1, 0))"
)


async def lock_stripe_customer(conn: Connection, stripe_customer_id: str) -> None:
    """Serialise writers of one Stripe customer's rows until the transaction ends."""
    await conn.execute(LOCK_STRIPE_CUSTOMER, stripe_customer_id)


async def lock_queue_customer(conn: Connection, queue_customer_id: str) -> None:
    """Serialise writes for one queue customer that has no Stripe customer to lock."""
    await conn.execute(LOCK_QUEUE_CUSTOMER, queue_customer_id)

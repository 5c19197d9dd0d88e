"""SQL for the Console/Raptor reads: customers with their current subscription, invoices."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from raxx_queue.db.pool import Connection

# One row per linked customer with its current subscription (view
# billing_current_subscription) and the entitlement computed at read time. A read
# touches only its customers' rows: an index lookup each, whatever the table sizes
# (tests/db/test_read_plans.py).
_CUSTOMER_SUMMARY = """
SELECT c.id,
       c.queue_customer_id,
       c.stripe_customer_id,
       c.billing_email,
       c.billing_name,
       c.deleted_at IS NOT NULL AS deleted,
       c.created_at,
       s.stripe_subscription_id,
       coalesce(s.plan_tier, 'free') AS subscribed_tier,
       coalesce(s.status, 'none') AS status,
       s.current_period_end,
       coalesce(s.cancel_at_period_end, false) AS cancel_at_period_end,
       s.trial_end,
       s.grace_until,
       (c.deleted_at IS NULL AND coalesce(s.entitled, false)) AS entitled,
       m.feature_locked_at
  FROM billing_customer AS c
  LEFT JOIN LATERAL (
        -- OFFSET 0 keeps this a per-customer lookup: flattened into a join, the view's
        -- DISTINCT ON would rank every subscription there is on every read
        SELECT * FROM billing_current_subscription AS cs
         WHERE cs.stripe_customer_id = c.stripe_customer_id
        OFFSET 0
       ) AS s ON true
  LEFT JOIN billing_subscription_mirror AS m ON m.queue_customer_id = c.queue_customer_id
"""

GET_CUSTOMER = _CUSTOMER_SUMMARY + "WHERE c.queue_customer_id = $1"

LIST_CUSTOMERS = f"""
SELECT * FROM (
    {_CUSTOMER_SUMMARY}
     WHERE c.queue_customer_id IS NOT NULL AND c.id > $1
) AS summary
 WHERE ($2::text IS NULL OR status = $2)
   AND ($3::text IS NULL OR CASE WHEN entitled THEN subscribed_tier ELSE 'free' END = $3)
 ORDER BY id
 LIMIT $4
"""  # noqa: S608 - built from a constant fragment, never from input

CUSTOMER_EXISTS = "SELECT stripe_customer_id FROM billing_customer WHERE queue_customer_id = $1"

LIST_INVOICES = """
SELECT i.stripe_invoice_id, i.stripe_subscription_id, i.status, i.number, i.currency,
       i.amount_due, i.amount_paid, i.amount_remaining, i.hosted_invoice_url,
       i.period_start, i.period_end, i.paid_at, i.stripe_created_at AS created
  FROM billing_invoice AS i
 WHERE i.stripe_customer_id = $1
   AND ($2::timestamptz IS NULL OR (i.stripe_created_at, i.stripe_invoice_id) < ($2, $3))
 ORDER BY i.stripe_created_at DESC, i.stripe_invoice_id DESC
 LIMIT $4
"""


async def fetch_customer(conn: Connection, queue_customer_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(GET_CUSTOMER, queue_customer_id)


async def fetch_customers(
    conn: Connection, *, after_id: int, status: str | None, plan_tier: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(LIST_CUSTOMERS, after_id, status, plan_tier, limit)


async def fetch_stripe_customer_id(
    conn: Connection, queue_customer_id: str
) -> tuple[bool, str | None]:
    """(customer exists, its Stripe customer id)."""
    row = await conn.fetchrow(CUSTOMER_EXISTS, queue_customer_id)
    if row is None:
        return False, None
    return True, row["stripe_customer_id"]


async def fetch_invoices(
    conn: Connection,
    stripe_customer_id: str,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, invoice_id = before if before else (None, None)
    return await conn.fetch(LIST_INVOICES, stripe_customer_id, created, invoice_id, limit)

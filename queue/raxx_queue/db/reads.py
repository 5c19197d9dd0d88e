"""SQL for the Console/Raptor reads: customers with their current subscription, invoices."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from raxx_queue.db.pool import Connection

# One row per customer with its current subscription and what it may use now, from the
# view billing_customer_state (entitlement and usable tier computed there, once). A read
# touches only its customers' rows: an index lookup each, whatever the table sizes
# (tests/db/test_read_plans.py).
_CUSTOMER_SUMMARY = """
SELECT cs.id, cs.queue_customer_id, cs.stripe_customer_id, cs.billing_email,
       cs.billing_name, cs.deleted, cs.created_at, cs.stripe_subscription_id,
       cs.subscribed_tier, cs.plan_tier, cs.status, cs.current_period_end,
       cs.cancel_at_period_end, cs.trial_end, cs.grace_until, cs.entitled,
       cs.access, cs.access_reason, cs.access_rule, m.access_changed_at,
       m.feature_locked_at
  FROM billing_customer_state AS cs
  LEFT JOIN billing_subscription_mirror AS m ON m.queue_customer_id = cs.queue_customer_id
"""

GET_CUSTOMER = _CUSTOMER_SUMMARY + "WHERE cs.queue_customer_id = $1"

LIST_CUSTOMERS = f"""
SELECT * FROM (
    {_CUSTOMER_SUMMARY}
     WHERE cs.queue_customer_id IS NOT NULL AND cs.id > $1
) AS summary
 WHERE ($2::text IS NULL OR status = $2)
   AND ($3::text IS NULL OR plan_tier = $3)
 ORDER BY id
 LIMIT $4
"""  # noqa: S608 - built from a constant fragment, never from input

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


async def fetch_invoices(
    conn: Connection,
    stripe_customer_id: str,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    created, invoice_id = before if before else (None, None)
    return await conn.fetch(LIST_INVOICES, stripe_customer_id, created, invoice_id, limit)

"""SQL for reconcile: Queue's view of one Stripe customer, and the customers to check."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.pool import Connection

LOCAL_CUSTOMER = """
SELECT queue_customer_id, billing_email AS email, billing_name AS name,
       deleted_at IS NOT NULL AS deleted, erased_at IS NOT NULL AS erased
  FROM billing_customer WHERE stripe_customer_id = $1
"""
LOCAL_SUBSCRIPTIONS = """
SELECT stripe_subscription_id, status, price_id, plan_tier, current_period_end,
       cancel_at_period_end, trial_end, canceled_at, ended_at, pause_behavior
  FROM billing_subscription WHERE stripe_customer_id = $1
"""
LOCAL_INVOICES = """
SELECT stripe_invoice_id, stripe_subscription_id, status, amount_due, amount_paid
  FROM billing_invoice WHERE stripe_invoice_id = ANY($1::text[])
"""
CUSTOMERS_AFTER = """
SELECT id, queue_customer_id, stripe_customer_id
  FROM billing_customer
 WHERE stripe_customer_id IS NOT NULL AND id > $1
 ORDER BY id
 LIMIT $2
"""
COUNT_CUSTOMERS_AFTER = (
    "SELECT count(*) FROM billing_customer WHERE stripe_customer_id IS NOT NULL AND id > $1"
)


async def local_state(
    conn: Connection, stripe_customer_id: str, invoice_ids: list[str]
) -> dict[str, Any]:
    customer = await conn.fetchrow(LOCAL_CUSTOMER, stripe_customer_id)
    subscriptions = await conn.fetch(LOCAL_SUBSCRIPTIONS, stripe_customer_id)
    invoices = await conn.fetch(LOCAL_INVOICES, invoice_ids)
    return {
        "customer": dict(customer) if customer else None,
        "subscriptions": {r["stripe_subscription_id"]: dict(r) for r in subscriptions},
        "invoices": {r["stripe_invoice_id"]: dict(r) for r in invoices},
    }

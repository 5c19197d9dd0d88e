"""SQL for reconcile: Queue's view of one Stripe customer, and job checkpoints."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.pool import Connection

LOCAL_CUSTOMER = """
SELECT queue_customer_id, billing_email AS email, billing_name AS name,
       deleted_at IS NOT NULL AS deleted
  FROM billing_customer WHERE stripe_customer_id = $1
"""
LOCAL_SUBSCRIPTIONS = """
SELECT stripe_subscription_id, status, price_id, plan_tier, current_period_end,
       cancel_at_period_end, trial_end, canceled_at, ended_at
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
STRIPE_ID_OF = "SELECT stripe_customer_id FROM billing_customer WHERE queue_customer_id = $1"
GET_CHECKPOINT = "SELECT position FROM billing_job_checkpoint WHERE job = $1"
SET_CHECKPOINT = """
INSERT INTO billing_job_checkpoint (job, position) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT billing_job_checkpoint_pkey
DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""
CLEAR_CHECKPOINT = "DELETE FROM billing_job_checkpoint WHERE job = $1"


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


async def get_checkpoint(conn: Connection, job: str) -> str | None:
    position: str | None = await conn.fetchval(GET_CHECKPOINT, job)
    return position


async def set_checkpoint(conn: Connection, job: str, position: str) -> None:
    await conn.execute(SET_CHECKPOINT, job, position)


async def clear_checkpoint(conn: Connection, job: str) -> None:
    await conn.execute(CLEAR_CHECKPOINT, job)

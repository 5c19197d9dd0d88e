"""SQL for storing subscriptions created through Queue (webhooks keep them current)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from raxx_queue.db.pool import Connection

# Upsert by id. `source_event_created_at` takes the subscription's `created`; a row a
# webhook already wrote at that time or later is left as it is (its state is as new or newer).
UPSERT_SUBSCRIPTION = """
INSERT INTO billing_subscription AS s
       (stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
        current_period_start, current_period_end, cancel_at_period_end, trial_end,
        canceled_at, ended_at, stripe_created_at, source_event_created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
ON CONFLICT (stripe_subscription_id) DO UPDATE
   SET stripe_customer_id = EXCLUDED.stripe_customer_id,
       status = EXCLUDED.status,
       price_id = EXCLUDED.price_id,
       plan_tier = EXCLUDED.plan_tier,
       current_period_start = EXCLUDED.current_period_start,
       current_period_end = EXCLUDED.current_period_end,
       cancel_at_period_end = EXCLUDED.cancel_at_period_end,
       trial_end = EXCLUDED.trial_end,
       canceled_at = EXCLUDED.canceled_at,
       ended_at = EXCLUDED.ended_at,
       stripe_created_at = EXCLUDED.stripe_created_at,
       source_event_created_at = EXCLUDED.source_event_created_at,
       updated_at = now()
 WHERE s.source_event_created_at IS NULL
    OR s.source_event_created_at < EXCLUDED.source_event_created_at
RETURNING (xmax = 0) AS inserted
"""


@dataclass(frozen=True)
class SubscriptionRow:
    stripe_subscription_id: str
    stripe_customer_id: str
    status: str
    price_id: str | None
    plan_tier: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    canceled_at: datetime | None
    ended_at: datetime | None
    created: datetime


async def upsert_subscription(conn: Connection, row: SubscriptionRow) -> str:
    """'inserted', 'updated', or 'kept' (a webhook already stored the same or newer state)."""
    result = await conn.fetchrow(
        UPSERT_SUBSCRIPTION,
        row.stripe_subscription_id,
        row.stripe_customer_id,
        row.status,
        row.price_id,
        row.plan_tier,
        row.current_period_start,
        row.current_period_end,
        row.cancel_at_period_end,
        row.trial_end,
        row.canceled_at,
        row.ended_at,
        row.created,
    )
    if result is None:
        return "kept"
    return "inserted" if result["inserted"] else "updated"

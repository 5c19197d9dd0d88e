"""Storing a Stripe subscription outside an event (the subscribe flow's answer)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from raxx_queue.db.pool import Connection

# The one writer of subscriptions, as the webhook uses it (billing_apply_event.sql).
STORE_SUBSCRIPTION = "SELECT stored FROM billing_store_subscription($1::jsonb, $2, $3, $4)"

TieRule = Literal["raise", "keep", "overwrite"]
Stored = Literal["inserted", "updated", "kept", "stale"]


async def store_subscription(
    conn: Connection, change: dict[str, Any], *, as_of: datetime, on_tie: TieRule, grace_days: int
) -> Stored:
    """Store a parsed subscription (raxx_queue.webhooks.changes) as of a time."""
    stored: Stored = await conn.fetchval(STORE_SUBSCRIPTION, change, as_of, on_tie, grace_days)
    return stored

"""SQL of the processed-events ledger (processed_stripe_events)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from raxx_queue.db.pool import Connection

KNOWN_EVENTS = "SELECT event_id FROM processed_stripe_events WHERE event_id = ANY($1::text[])"

# The newest Stripe event Queue holds, among the most recently received (an index
# scan, not the whole ledger). Left out: reconcile's synthetic events (created "now",
# they say nothing of what Stripe sent) and thin notifications (not snapshot events;
# their types are namespaced, `v1.…`, `v2.…`).
NEWEST_RECORDED = r"""
SELECT extract(epoch FROM max(event_created_at))::bigint
  FROM (SELECT event_created_at FROM processed_stripe_events
         WHERE source <> 'reconcile' AND type !~ '^v[0-9]+\.'
         ORDER BY received_at DESC
         LIMIT 1000) AS recent
"""

# A thin notification, recorded once (its snapshot event, if any, is recorded by
# billing_apply_stripe_event under its own id).
RECORD_THIN = """
INSERT INTO processed_stripe_events
       (event_id, type, outcome, stripe_customer_id, event_created_at, livemode, source,
        request_id, payload)
VALUES ($1, $2, $3, $4, $5, $6, 'thin', $7, $8::jsonb)
ON CONFLICT ON CONSTRAINT processed_stripe_events_pkey DO NOTHING
RETURNING event_id
"""


async def known_event_ids(conn: Connection, event_ids: Sequence[str]) -> set[str]:
    """The ids among event_ids that Queue has processed already."""
    return {r["event_id"] for r in await conn.fetch(KNOWN_EVENTS, list(event_ids))}


async def newest_recorded_event(conn: Connection) -> int | None:
    """`created` (epoch seconds) of the newest Stripe event Queue has recorded, if any."""
    newest: int | None = await conn.fetchval(NEWEST_RECORDED)
    return newest


async def record_thin_event(
    conn: Connection,
    *,
    event_id: str,
    event_type: str,
    outcome: str,
    stripe_customer_id: str | None,
    created: datetime,
    livemode: bool,
    request_id: str | None,
    payload: dict[str, Any],
) -> bool:
    """Record a thin notification; False when it was recorded already."""
    recorded = await conn.fetchval(
        RECORD_THIN,
        event_id,
        event_type,
        outcome,
        stripe_customer_id,
        created,
        livemode,
        request_id,
        payload,
    )
    return recorded is not None

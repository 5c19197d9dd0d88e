"""SQL of the processed-events ledger (processed_stripe_events)."""

from __future__ import annotations

from collections.abc import Sequence

from raxx_queue.db.pool import Connection

KNOWN_EVENTS = "SELECT event_id FROM processed_stripe_events WHERE event_id = ANY($1::text[])"


async def known_event_ids(conn: Connection, event_ids: Sequence[str]) -> set[str]:
    """The ids among event_ids that Queue has processed already."""
    return {r["event_id"] for r in await conn.fetch(KNOWN_EVENTS, list(event_ids))}

"""Appending to the audit log; rows are sealed into the HMAC chain later (audit.chain)."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.pool import Connection

APPEND_ACTION = """
INSERT INTO billing_action_log
       (actor, action, queue_customer_id, stripe_object_id, event_id, request_id, summary)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""


async def append_action(
    conn: Connection,
    *,
    actor: str,
    action: str,
    queue_customer_id: str | None,
    stripe_object_id: str | None = None,
    event_id: str | None = None,
    request_id: str | None = None,
    summary: dict[str, Any] | None = None,
) -> int:
    """Append one unsealed audit row inside the caller's transaction; return its id.

    summary must be PII-free: ids, statuses, tiers, amounts, timestamps.
    """
    row_id: int = await conn.fetchval(
        APPEND_ACTION,
        actor,
        action,
        queue_customer_id,
        stripe_object_id,
        event_id,
        request_id,
        summary or {},
    )
    return row_id

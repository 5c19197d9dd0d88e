"""Audit-log lookups that keep a replayed operation from being audited twice."""

from __future__ import annotations

from raxx_queue.db.pool import Connection

ACTION_RECORDED = """
SELECT EXISTS (
    SELECT 1 FROM billing_action_log
     WHERE queue_customer_id = $1 AND action = $2 AND stripe_object_id = $3
)
"""


async def action_recorded(
    conn: Connection, queue_customer_id: str, action: str, stripe_object_id: str
) -> bool:
    recorded: bool = await conn.fetchval(
        ACTION_RECORDED, queue_customer_id, action, stripe_object_id
    )
    return recorded

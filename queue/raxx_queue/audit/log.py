"""Appending to the audit log; rows are sealed into the HMAC chain later (audit.chain).

Every append happens inside the transaction that made the change, and reports itself
on that transaction (so the sealer is woken once it commits).
"""

from __future__ import annotations

from typing import Any

from raxx_queue.db.pool import Transaction
from raxx_queue.vocabulary import Actor

APPEND_ACTION = """
INSERT INTO billing_action_log
       (actor, action, queue_customer_id, stripe_object_id, event_id, request_id, summary)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
"""

ACTION_RECORDED = """
SELECT EXISTS (
    SELECT 1 FROM billing_action_log
     WHERE queue_customer_id = $1 AND action = $2 AND stripe_object_id = $3
)
"""


async def append_action(
    tx: Transaction,
    *,
    actor: Actor,
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
    row_id: int = await tx.conn.fetchval(
        APPEND_ACTION,
        actor,
        action,
        queue_customer_id,
        stripe_object_id,
        event_id,
        request_id,
        summary or {},
    )
    tx.effects.audited = True
    return row_id


async def record_once(
    tx: Transaction,
    *,
    actor: Actor,
    action: str,
    queue_customer_id: str,
    stripe_object_id: str,
    request_id: str | None,
    summary: dict[str, Any],
) -> bool:
    """Append the audit row unless this action on this object is already recorded.

    One row per operation however often it is replayed (a retried request gets
    Stripe's first answer back). The caller holds the customer's advisory lock, so
    concurrent replays cannot both append.
    """
    recorded: bool = await tx.conn.fetchval(
        ACTION_RECORDED, queue_customer_id, action, stripe_object_id
    )
    if recorded:
        return False
    await append_action(
        tx,
        actor=actor,
        action=action,
        queue_customer_id=queue_customer_id,
        stripe_object_id=stripe_object_id,
        request_id=request_id,
        summary=summary,
    )
    return True

"""Audit rows of the write flows, one per operation however often it is replayed."""

from __future__ import annotations

from typing import Any

from raxx_queue.audit.log import append_action
from raxx_queue.billing.context import BillingContext
from raxx_queue.db.actions import action_recorded
from raxx_queue.db.pool import Connection


async def record_once(
    conn: Connection,
    ctx: BillingContext,
    *,
    action: str,
    queue_customer_id: str,
    stripe_object_id: str,
    summary: dict[str, Any],
) -> bool:
    """Append the audit row unless this action on this object is already recorded.

    The caller holds the customer's advisory lock, so concurrent replays cannot both append.
    """
    if await action_recorded(conn, queue_customer_id, action, stripe_object_id):
        return False
    await append_action(
        conn,
        actor=ctx.actor,
        action=action,
        queue_customer_id=queue_customer_id,
        stripe_object_id=stripe_object_id,
        request_id=ctx.request_id,
        summary=summary,
    )
    return True

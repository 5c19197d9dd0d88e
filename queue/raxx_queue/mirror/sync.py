"""Mirror-sync: Raptor's just-in-time read of a row, and re-queueing pushes."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.pool import Database
from raxx_queue.errors import CustomerNotFound
from raxx_queue.mirror import outbox
from raxx_queue.mirror.rows import lock_customer, refresh_mirror
from raxx_queue.wakeups import Wakeup


async def sync_customer_mirror(
    db: Database, wakeup: Wakeup, queue_customer_id: str
) -> dict[str, Any]:
    """Queue a push of the customer's mirror row and return the row as it stands.

    A customer without a row yet gets one computed from its billing state.
    """
    async with db.transaction() as conn:
        row = await outbox.requeue_customer(conn, queue_customer_id)
        if row is None:
            exists, stripe_customer_id = await outbox.customer_stripe_id(conn, queue_customer_id)
            if not exists:
                raise CustomerNotFound()
            if stripe_customer_id is not None:
                await lock_customer(conn, stripe_customer_id)
            await refresh_mirror(conn, queue_customer_id)
            row = await outbox.requeue_customer(conn, queue_customer_id)
            assert row is not None
    wakeup.nudge()
    return row


async def requeue_all_mirrors(db: Database, wakeup: Wakeup) -> int:
    """Queue a push of every mirror row; returns how many."""
    async with db.transaction() as conn:
        queued = await outbox.requeue_all(conn)
    wakeup.nudge()
    return queued

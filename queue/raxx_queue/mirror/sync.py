"""Mirror-sync: Raptor's just-in-time read of a row, and re-queueing pushes."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.customers import fetch_stripe_customer_id
from raxx_queue.db.locks import lock_stripe_customer
from raxx_queue.db.pool import Database
from raxx_queue.errors import CustomerNotFound
from raxx_queue.mirror import outbox
from raxx_queue.mirror.rows import refresh_mirror


async def sync_customer_mirror(db: Database, queue_customer_id: str) -> dict[str, Any]:
    """Queue a push of the customer's mirror row and return the row as it stands.

    A customer without a row yet gets one computed from its billing state.
    """
    async with db.transaction() as tx:
        row = await outbox.requeue_customer(tx.conn, queue_customer_id)
        if row is None:
            exists, stripe_customer_id = await fetch_stripe_customer_id(tx.conn, queue_customer_id)
            if not exists:
                raise CustomerNotFound()
            if stripe_customer_id is not None:
                await lock_stripe_customer(tx.conn, stripe_customer_id)
            await refresh_mirror(tx, queue_customer_id)
            row = await outbox.requeue_customer(tx.conn, queue_customer_id)
            assert row is not None
        tx.effects.mirror_changed = True
    return row

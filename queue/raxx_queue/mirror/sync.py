"""Mirror-sync: Raptor's just-in-time read of a row, and re-queueing pushes."""

from __future__ import annotations

from typing import Any

from raxx_queue.db.customers import fetch_stripe_customer_id
from raxx_queue.db.locks import lock_stripe_customer
from raxx_queue.db.pool import Database
from raxx_queue.errors import CustomerNotFound
from raxx_queue.mirror import digest, outbox
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


async def requeue_bucket_mirrors(db: Database, bucket: int, buckets: int) -> int:
    """Queue a push of every row in one bucket of the digest; returns how many."""
    async with db.transaction() as tx:
        queued = await digest.requeue_bucket(tx.conn, bucket, buckets)
        tx.effects.mirror_changed = queued > 0
    return queued


async def mirror_digest(db: Database, buckets: int) -> list[digest.BucketDigest]:
    """Every bucket's row count and digest."""
    async with db.connection() as conn:
        return await digest.bucket_digests(conn, buckets)

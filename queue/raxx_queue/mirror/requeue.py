"""Mirror-sync of every row, one run at a time and in short batches (docs/security.md,
finding 6): a second `{"all": true}` while one runs is a 409, and no transaction holds
more than one batch of mirror rows, so webhooks writing the mirror wait at most that."""

from __future__ import annotations

import time
import uuid

from raxx_queue.db import jobs
from raxx_queue.db.pool import Database
from raxx_queue.errors import ServiceError

JOB = "mirror-sync-all"
LEASE_SECONDS = 60.0
BATCH = 500

# One batch in key order, re-queued as outbox.REQUEUE_ALL re-queues every row (a push in
# flight moves next_push_at, so its result does not count as this re-push).
REQUEUE_BATCH = """
WITH batch AS (
    SELECT queue_customer_id
      FROM billing_subscription_mirror
     WHERE queue_customer_id > $1
     ORDER BY queue_customer_id
     LIMIT $2
       FOR UPDATE
), requeued AS (
    UPDATE billing_subscription_mirror AS m
       SET pushed_version = least(m.pushed_version, m.version - 1),
           next_push_at = now(),
           push_attempts = 0
      FROM batch
     WHERE m.queue_customer_id = batch.queue_customer_id
    RETURNING m.queue_customer_id
)
SELECT (SELECT max(queue_customer_id) FROM requeued) AS last,
       (SELECT count(*) FROM requeued) AS rows
"""


class MirrorSyncRunning(ServiceError):
    status = 409
    code = "MIRROR_SYNC_RUNNING"

    def __init__(self) -> None:
        super().__init__("a mirror-sync of every row is running; call again once it has ended")


async def requeue_every_mirror(db: Database, *, batch: int = BATCH) -> int:
    """Queue a push of every row, batch by batch, holding the job's lease; returns how
    many rows will be pushed. MirrorSyncRunning when another run holds the lease."""
    held = await jobs.claim(db, JOB, f"mirror-sync:{uuid.uuid4().hex}", LEASE_SECONDS, force=True)
    if held is None:
        raise MirrorSyncRunning()
    queued, after, renewed, outcome = 0, "", time.monotonic(), "failed"
    try:
        while True:
            async with db.transaction() as tx:
                row = await tx.conn.fetchrow(REQUEUE_BATCH, after, batch)
                assert row is not None
                tx.effects.mirror_changed = row["rows"] > 0
            if not row["rows"]:
                break
            queued += row["rows"]
            after = row["last"]
            if time.monotonic() - renewed > LEASE_SECONDS / 4:
                if not await jobs.renew(db, held, LEASE_SECONDS):
                    raise MirrorSyncRunning()
                renewed = time.monotonic()
        outcome = "ok"
    finally:
        await jobs.finish(db, held, outcome, {"queued": queued}, next_in=0)
    return queued

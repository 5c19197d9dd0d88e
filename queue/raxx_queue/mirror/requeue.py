"""Mirror-sync of every row, one run at a time and in short batches (docs/security.md,
finding 6): a second `{"all": true}` while one runs is a 409, and no transaction holds
more than one batch of mirror rows, so webhooks writing the mirror wait at most that."""

from __future__ import annotations

import time
import uuid

from raxx_queue.db import jobs
from raxx_queue.db.pool import Database
from raxx_queue.errors import ServiceError
from raxx_queue.mirror import outbox

JOB = "mirror-sync-all"
LEASE_SECONDS = 60.0
BATCH = 500


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
                last, rows = await outbox.requeue_batch(tx.conn, after, batch)
                tx.effects.mirror_changed = rows > 0
            if last is None:
                break
            queued += rows
            after = last
            if time.monotonic() - renewed > LEASE_SECONDS / 4:
                if not await jobs.renew(db, held, LEASE_SECONDS):
                    raise MirrorSyncRunning()
                renewed = time.monotonic()
        outcome = "ok"
    finally:
        await jobs.finish(db, held, outcome, {"queued": queued}, next_in=0)
    return queued

"""Background jobs that every web process runs, one holder at a time: leases, runs, checkpoint.

A lease is a row (`billing_job_lease`), claimed and renewed by single statements, so it
works through PgBouncer in transaction mode and no transaction stays open while the
holder talks to Stripe. The holder is a token unique to one run: once its lease lapsed
and another process claimed it, the old run can neither renew it nor write the job's
checkpoint. Each claimed run gets a `billing_job_run` row saying what it did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from raxx_queue.db.pool import Connection, Database

# A lapsed lease is free; a due job (or a forced claim, at start-up) may take it.
CLAIM = """
INSERT INTO billing_job_lease AS l (job, holder, lease_until)
VALUES ($1, $2, now() + make_interval(secs => $3))
ON CONFLICT ON CONSTRAINT billing_job_lease_pkey DO UPDATE
   SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until, updated_at = now()
 WHERE l.lease_until <= now() AND (l.next_run_at <= now() OR $4::boolean)
RETURNING l.lease_until
"""
# Runs whose holder vanished (a killed process) never finished: say so.
ABANDON_UNFINISHED = """
UPDATE billing_job_run SET finished_at = now(), outcome = 'abandoned'
 WHERE job = $1 AND finished_at IS NULL
"""
START_RUN = "INSERT INTO billing_job_run (job, holder) VALUES ($1, $2) RETURNING id, started_at"
RENEW = """
UPDATE billing_job_lease
   SET lease_until = now() + make_interval(secs => $3), updated_at = now()
 WHERE job = $1 AND holder = $2
RETURNING lease_until
"""
RELEASE = """
UPDATE billing_job_lease
   SET holder = NULL, lease_until = now(), next_run_at = now() + make_interval(secs => $3),
       updated_at = now()
 WHERE job = $1 AND holder = $2
"""
FINISH_RUN = """
UPDATE billing_job_run SET finished_at = now(), outcome = $2, report = $3::jsonb WHERE id = $1
"""
PRUNE_RUNS = """
DELETE FROM billing_job_run WHERE job = $1 AND finished_at < now() - interval '30 days'
"""
# Written only while the lease is held; the lease row is locked meanwhile, so a
# takeover waits for this write or sees it refused.
SAVE_CHECKPOINT = """
WITH held AS (
    SELECT job FROM billing_job_lease WHERE job = $1 AND holder = $2 FOR UPDATE
)
INSERT INTO billing_job_checkpoint (job, position)
SELECT job, $3 FROM held
ON CONFLICT ON CONSTRAINT billing_job_checkpoint_pkey
DO UPDATE SET position = EXCLUDED.position, updated_at = now()
RETURNING job
"""
LATEST_RUN = """
SELECT started_at, finished_at, outcome, report
  FROM billing_job_run
 WHERE job = $1 AND finished_at IS NOT NULL
 ORDER BY id DESC
 LIMIT 1
"""


@dataclass(frozen=True)
class Claim:
    """A run that holds the job's lease."""

    job: str
    holder: str
    run_id: int
    started_at: datetime


async def claim(
    db: Database, job: str, holder: str, lease_seconds: float, *, force: bool
) -> Claim | None:
    """The lease and a run row, or None when another run holds it (or it is not due)."""
    async with db.transaction() as tx:
        lease = await tx.conn.fetchval(CLAIM, job, holder, lease_seconds, force)
        if lease is None:
            return None
        await tx.conn.execute(ABANDON_UNFINISHED, job)
        row = await tx.conn.fetchrow(START_RUN, job, holder)
    assert row is not None
    return Claim(job, holder, row["id"], row["started_at"])


async def renew(db: Database, held: Claim, lease_seconds: float) -> bool:
    """Extend the lease; False when it was taken over."""
    async with db.connection() as conn:
        lease = await conn.fetchval(RENEW, held.job, held.holder, lease_seconds)
    return lease is not None


async def finish(
    db: Database, held: Claim, outcome: str, report: dict[str, Any], next_in: float
) -> None:
    """Record the run and give the lease back; the job is due again in `next_in` seconds."""
    async with db.transaction() as tx:
        await tx.conn.execute(RELEASE, held.job, held.holder, next_in)
        await tx.conn.execute(FINISH_RUN, held.run_id, outcome, report)
        await tx.conn.execute(PRUNE_RUNS, held.job)


async def save_checkpoint(db: Database, held: Claim, position: str) -> bool:
    """Store the job's checkpoint if the lease is still held; False when it is not."""
    async with db.connection() as conn:
        return await conn.fetchval(SAVE_CHECKPOINT, held.job, held.holder, position) is not None


async def latest_run(conn: Connection, job: str) -> dict[str, Any] | None:
    """The last finished run of the job: when, its outcome and its report."""
    row = await conn.fetchrow(LATEST_RUN, job)
    return dict(row) if row is not None else None

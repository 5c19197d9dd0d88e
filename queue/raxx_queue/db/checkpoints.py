"""Where a resumable operator job stopped (reconcile --all)."""

from __future__ import annotations

from raxx_queue.db.pool import Connection

GET_CHECKPOINT = "SELECT position FROM billing_job_checkpoint WHERE job = $1"
SET_CHECKPOINT = """
INSERT INTO billing_job_checkpoint (job, position) VALUES ($1, $2)
ON CONFLICT ON CONSTRAINT billing_job_checkpoint_pkey
DO UPDATE SET position = EXCLUDED.position, updated_at = now()
"""
CLEAR_CHECKPOINT = "DELETE FROM billing_job_checkpoint WHERE job = $1"


async def get_checkpoint(conn: Connection, job: str) -> str | None:
    position: str | None = await conn.fetchval(GET_CHECKPOINT, job)
    return position


async def set_checkpoint(conn: Connection, job: str, position: str) -> None:
    await conn.execute(SET_CHECKPOINT, job, position)


async def clear_checkpoint(conn: Connection, job: str) -> None:
    await conn.execute(CLEAR_CHECKPOINT, job)

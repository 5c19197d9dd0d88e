"""Raptor's mirror endpoint as a destination: disabled by a 410 Gone, resumed by an operator.

While disabled no process claims a row (`outbox.CLAIM_DUE`), so every change stays
pending in the mirror table: held, never dropped. Resuming makes the held rows due at
once, with a fresh backoff.
"""

from __future__ import annotations

from raxx_queue.db.pool import Connection

# The first process to see the 410 disables it; the others find it disabled already.
DISABLE = """
INSERT INTO billing_mirror_destination AS d (destination, disabled_at, disabled_reason)
VALUES ('raptor', now(), $1)
ON CONFLICT (destination) DO UPDATE
   SET disabled_at = now(), disabled_reason = excluded.disabled_reason, updated_at = now()
 WHERE d.disabled_at IS NULL
RETURNING disabled_at
"""

RESUME = """
WITH resumed AS (
    UPDATE billing_mirror_destination
       SET disabled_at = NULL, disabled_reason = NULL, updated_at = now()
     WHERE disabled_at IS NOT NULL
 RETURNING destination
), held AS (
    SELECT queue_customer_id
      FROM billing_subscription_mirror
     WHERE version > pushed_version
     ORDER BY queue_customer_id
       FOR UPDATE
), due AS (
    UPDATE billing_subscription_mirror AS m
       SET next_push_at = now(), push_attempts = 0
      FROM held
     WHERE m.queue_customer_id = held.queue_customer_id
 RETURNING 1
)
SELECT (SELECT count(*) FROM resumed) AS resumed, (SELECT count(*) FROM due) AS pending
"""

IS_DISABLED = """
SELECT EXISTS (SELECT 1 FROM billing_mirror_destination WHERE disabled_at IS NOT NULL)
"""


async def disable(conn: Connection, reason: str) -> bool:
    """Disable the destination; True when this call did it (it was enabled)."""
    return await conn.fetchval(DISABLE, reason) is not None


async def resume(conn: Connection) -> tuple[bool, int]:
    """(whether it was disabled, rows pending and now due)."""
    record = await conn.fetchrow(RESUME)
    assert record is not None
    return bool(record["resumed"]), int(record["pending"])


async def is_disabled(conn: Connection) -> bool:
    return bool(await conn.fetchval(IS_DISABLED))

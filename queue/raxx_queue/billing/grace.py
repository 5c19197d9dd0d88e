"""Applies the access changes that time alone makes (safe with several processes).

A grace window lapsing, or the period paid before collection was paused ending, changes
access with no event to say so. The rules are SQL (deploy/billing_grace.sql, the access
policy in deploy/billing_access_policy.sql); the mirror row keeps the next such time
(access_due_at), and this job recomputes the rows whose time has come, each once: the
recomputation takes the customer's lock and is idempotent, and a change of access is
audited with the rule that decided it (billing_refresh_mirror).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from raxx_queue.audit.log import append_action
from raxx_queue.db.locks import lock_stripe_customer
from raxx_queue.db.pool import UNAVAILABLE, Database
from raxx_queue.mirror.rows import refresh_mirror

log = structlog.get_logger(__name__)
INTERVAL_SECONDS = 60.0

EXPIRED = """
SELECT m.queue_customer_id, c.stripe_customer_id
  FROM billing_subscription_mirror AS m
  JOIN billing_customer AS c USING (queue_customer_id)
 WHERE m.access_due_at <= now()
 ORDER BY m.access_due_at
 LIMIT $1
"""


def _expiry_action(access_change: dict[str, Any] | None) -> str:
    reason = ((access_change or {}).get("after") or {}).get("access_reason")
    return "collection_pause.began" if reason == "collection_paused" else "grace.expired"


async def expire_grace_windows(db: Database, limit: int = 500) -> int:
    """Recompute mirrors whose access is due to change; audit each. Returns the number changed."""
    async with db.connection() as conn:
        due = await conn.fetch(EXPIRED, limit)
    changed = 0
    for row in due:
        async with db.transaction() as tx:
            if row["stripe_customer_id"]:
                await lock_stripe_customer(tx.conn, row["stripe_customer_id"])
            mirror = await refresh_mirror(tx, row["queue_customer_id"], actor=None)
            if mirror.changed:  # another process may have done it already
                await append_action(
                    tx,
                    actor="system",
                    action=_expiry_action(mirror.access_change),
                    queue_customer_id=row["queue_customer_id"],
                    summary={
                        # the policy's rule and the facts it read
                        "access": mirror.access_change,
                        "mirror": {
                            "version": mirror.version,
                            "before": mirror.before,
                            "after": mirror.after,
                        },
                    },
                )
                changed += 1
    return changed


class GraceExpiryJob:
    """Runs expire_grace_windows every INTERVAL_SECONDS inside the web process."""

    def __init__(self, db: Database, interval: float = INTERVAL_SECONDS) -> None:
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="grace-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self) -> int:
        changed = await expire_grace_windows(self._db)
        if changed:
            log.info("grace_windows_expired", count=changed)
        return changed

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except UNAVAILABLE:
                log.warning("grace_expiry_database_unavailable")
            except Exception as error:
                log.error("grace_expiry_failed", error_type=type(error).__name__)
            await asyncio.sleep(self._interval)

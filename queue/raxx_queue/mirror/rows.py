"""The mirror row of a customer: its pushed fields, and its recomputation in a transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raxx_queue.db.pool import Transaction

REFRESH_MIRROR = "SELECT changed, version, before, after FROM billing_refresh_mirror($1)"

MIRROR_FIELDS = (
    "queue_customer_id",
    "plan_tier",
    "status",
    "current_period_end",
    "grace_until",
    "entitled",
    "feature_locked_at",
    "version",
    "updated_at",
)


@dataclass(frozen=True)
class MirrorChange:
    changed: bool
    version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def refresh_mirror(tx: Transaction, queue_customer_id: str) -> MirrorChange:
    """Recompute the mirror row in the caller's transaction (the outbox write)."""
    row = await tx.conn.fetchrow(REFRESH_MIRROR, queue_customer_id)
    if row is None:
        return MirrorChange(changed=False, version=None, before=None, after=None)
    tx.effects.mirror_changed |= row["changed"]
    return MirrorChange(
        changed=row["changed"], version=row["version"], before=row["before"], after=row["after"]
    )

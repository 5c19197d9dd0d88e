"""The mirror row of a customer: recomputation inside a transaction, and reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raxx_queue.db.pool import Connection

REFRESH_MIRROR = "SELECT changed, version, before, after FROM billing_refresh_mirror($1)"

LOCK_CUSTOMER = "SELECT pg_advisory_xact_lock(billing_customer_lock_key($1))"

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

GET_MIRROR = f"""
SELECT {", ".join(MIRROR_FIELDS)} FROM billing_subscription_mirror WHERE queue_customer_id = $1
"""  # noqa: S608 - constant column list


@dataclass(frozen=True)
class MirrorChange:
    changed: bool
    version: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


async def lock_customer(conn: Connection, stripe_customer_id: str) -> None:
    """Serialise writers of one Stripe customer's rows until the transaction ends."""
    await conn.execute(LOCK_CUSTOMER, stripe_customer_id)


async def refresh_mirror(conn: Connection, queue_customer_id: str) -> MirrorChange:
    """Recompute the mirror row in the caller's transaction (the outbox write)."""
    row = await conn.fetchrow(REFRESH_MIRROR, queue_customer_id)
    if row is None:
        return MirrorChange(changed=False, version=None, before=None, after=None)
    return MirrorChange(
        changed=row["changed"], version=row["version"], before=row["before"], after=row["after"]
    )


async def fetch_mirror(conn: Connection, queue_customer_id: str) -> dict[str, Any] | None:
    """The mirror row exactly as it is pushed to Raptor (no PII)."""
    row = await conn.fetchrow(GET_MIRROR, queue_customer_id)
    return dict(row) if row is not None else None

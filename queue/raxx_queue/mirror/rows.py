"""The mirror row of a customer: its pushed fields, and its recomputation in a transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from raxx_queue.db.pool import Transaction
from raxx_queue.vocabulary import Actor

log = structlog.get_logger(__name__)

REFRESH_MIRROR = """
SELECT changed, version, before, after, access_change
  FROM billing_refresh_mirror($1, $2, NULL, $3)
"""

MIRROR_FIELDS = (
    "queue_customer_id",
    "plan_tier",
    "status",
    "current_period_end",
    "grace_until",
    "entitled",
    "access",
    "access_reason",
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
    # a change of access: the rule that decided it, before, after, the facts it read
    access_change: dict[str, Any] | None = None


def log_access_change(
    queue_customer_id: str | None, change: dict[str, Any] | str | bytes, **context: Any
) -> None:
    """The log's line of a change of access (the audit row holds the same, with its basis)."""
    # a connection without the service's jsonb codec hands it over as text
    found: dict[str, Any] = orjson.loads(change) if isinstance(change, str | bytes) else change
    before, after = found.get("before") or {}, found.get("after") or {}
    log.info(
        "access_changed",
        queue_customer_id=queue_customer_id,
        access_before=before.get("access"),
        access=after.get("access"),
        access_reason=after.get("access_reason"),
        rule=found.get("rule"),
        **context,
    )


async def refresh_mirror(
    tx: Transaction,
    queue_customer_id: str,
    actor: Actor | None = "system",
    request_id: str | None = None,
) -> MirrorChange:
    """Recompute the mirror row in the caller's transaction (the outbox write). A change
    of access is audited ('access.changed') as `actor`; with no actor the caller puts
    MirrorChange.access_change in its own audit row."""
    row = await tx.conn.fetchrow(REFRESH_MIRROR, queue_customer_id, actor, request_id)
    if row is None:
        return MirrorChange(changed=False, version=None, before=None, after=None)
    tx.effects.mirror_changed |= row["changed"]
    # a change of access appended an audit row (billing_refresh_mirror)
    tx.effects.audited |= actor is not None and row["access_change"] is not None
    if row["access_change"] is not None:
        log_access_change(queue_customer_id, row["access_change"], actor=actor)
    return MirrorChange(
        changed=row["changed"],
        version=row["version"],
        before=row["before"],
        after=row["after"],
        access_change=row["access_change"],
    )

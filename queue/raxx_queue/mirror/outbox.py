"""The mirror table as an outbox: claim due rows under a lease, record push results.

A row is pending while `version > pushed_version`. The dispatcher claims due rows in one
short statement (`FOR UPDATE SKIP LOCKED`, so it never waits on a webhook transaction)
that sets `push_lease_until` (nothing while the destination is disabled, see
`destination`); the HTTP push then runs with no transaction open. The
lease doubles as a fencing token: a row can only be claimed again once its lease has
passed, so every new lease is later than the one before, and a result is recorded only
`WHERE push_lease_until = <the lease it was pushed under>`. A holder whose lease ran out
(and was taken over) therefore records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from raxx_queue.db.pool import Connection
from raxx_queue.mirror.rows import MIRROR_FIELDS

_RETURNED = ", ".join(f"m.{field}" for field in MIRROR_FIELDS)

CLAIM_DUE = f"""
WITH due AS (
    SELECT queue_customer_id
      FROM billing_subscription_mirror
     WHERE version > pushed_version
       AND next_push_at <= now()
       AND (push_lease_until IS NULL OR push_lease_until <= now())
       AND NOT EXISTS (SELECT 1 FROM billing_mirror_destination WHERE disabled_at IS NOT NULL)
     ORDER BY next_push_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
)
UPDATE billing_subscription_mirror AS m
   SET push_lease_until = now() + make_interval(secs => $2)
  FROM due
 WHERE m.queue_customer_id = due.queue_customer_id
RETURNING {_RETURNED}, m.push_attempts, m.push_lease_until, m.next_push_at
"""  # noqa: S608 - constant column list

# One statement records a whole batch. Rows are locked in key order (here and in
# REQUEUE_BATCH) so two multi-row writers of the mirror cannot deadlock. A delivered
# version counts as pushed unless the row was re-queued while it was in flight
# (next_push_at moved and the version did not): that request asks for one more push.
RECORD_RESULTS = """
WITH r AS (
    SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::boolean[],
                         $5::float8[], $6::text[], $7::timestamptz[])
             AS u(queue_customer_id, lease, version, ok, retry_in, error, due)
), held AS (
    SELECT m.queue_customer_id
      FROM billing_subscription_mirror AS m
      JOIN r ON r.queue_customer_id = m.queue_customer_id AND r.lease = m.push_lease_until
     ORDER BY m.queue_customer_id
       FOR UPDATE OF m
)
UPDATE billing_subscription_mirror AS m
   SET pushed_version = CASE WHEN r.ok AND (m.next_push_at = r.due OR m.version > r.version)
                             THEN greatest(m.pushed_version, r.version)
                             ELSE m.pushed_version END,
       push_attempts = CASE WHEN r.ok THEN 0 ELSE m.push_attempts + 1 END,
       next_push_at = CASE WHEN r.ok THEN m.next_push_at
                           ELSE now() + make_interval(secs => r.retry_in) END,
       last_pushed_at = CASE WHEN r.ok THEN now() ELSE m.last_pushed_at END,
       last_push_error = r.error,
       push_lease_until = NULL
  FROM held, r
 WHERE m.queue_customer_id = held.queue_customer_id
   AND r.queue_customer_id = held.queue_customer_id
   AND m.push_lease_until = r.lease
"""

RELEASE_LEASES = """
UPDATE billing_subscription_mirror AS m
   SET push_lease_until = NULL
  FROM unnest($1::text[], $2::timestamptz[]) AS r(queue_customer_id, lease)
 WHERE m.queue_customer_id = r.queue_customer_id
   AND m.push_lease_until = r.lease
"""

# Rows waiting to be pushed, and how long the longest-waiting one has waited: since it
# became due (change or re-queue) or, once it has failed, since its last change.
PENDING_STATS = """
SELECT count(*) AS pending,
       coalesce(extract(epoch FROM now() - min(
           CASE WHEN push_attempts = 0 THEN least(next_push_at, now()) ELSE updated_at END
       )), 0)::float8 AS oldest_age
  FROM billing_subscription_mirror
 WHERE version > pushed_version
"""

# What re-queueing a row means, wherever rows are re-queued: pending even when its
# version was pushed already (Raptor ignores versions it holds), due now, with a fresh
# retry count. A push in flight keeps its lease (never doubled), and its result does not
# count as this push (next_push_at moved, see RECORD_RESULTS).
REQUEUE_SET = """
   SET pushed_version = least(m.pushed_version, m.version - 1),
       next_push_at = now(),
       push_attempts = 0"""

REQUEUE_CUSTOMER = f"""
UPDATE billing_subscription_mirror AS m{REQUEUE_SET}
 WHERE m.queue_customer_id = $1
RETURNING {_RETURNED}
"""

# One batch of every row in key order, after the id $1: its last id and its size.
REQUEUE_BATCH = f"""
WITH batch AS (
    SELECT queue_customer_id
      FROM billing_subscription_mirror
     WHERE queue_customer_id > $1
     ORDER BY queue_customer_id
     LIMIT $2
       FOR UPDATE
), requeued AS (
    UPDATE billing_subscription_mirror AS m{REQUEUE_SET}
      FROM batch
     WHERE m.queue_customer_id = batch.queue_customer_id
    RETURNING m.queue_customer_id
)
SELECT (SELECT max(queue_customer_id) FROM requeued) AS last,
       (SELECT count(*) FROM requeued) AS rows
"""  # noqa: S608 - constant expressions


@dataclass(frozen=True)
class Claim:
    """A row claimed for one push: the payload and the lease it is pushed under."""

    row: dict[str, Any]
    attempts: int
    lease: datetime
    due: datetime  # next_push_at when claimed

    @property
    def queue_customer_id(self) -> str:
        return str(self.row["queue_customer_id"])

    @property
    def version(self) -> int:
        return int(self.row["version"])


@dataclass(frozen=True)
class PushResult:
    """What became of one push: `outcome` is the metric label, `error` what is stored."""

    claim: Claim
    outcome: str
    retry_in: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


async def claim_due(conn: Connection, limit: int, lease_seconds: float) -> list[Claim]:
    """Lease up to `limit` due rows and return them as they are now (newest version)."""
    records = await conn.fetch(CLAIM_DUE, limit, lease_seconds)
    claims = []
    for record in records:
        row = {field: record[field] for field in MIRROR_FIELDS}
        claims.append(
            Claim(
                row=row,
                attempts=record["push_attempts"],
                lease=record["push_lease_until"],
                due=record["next_push_at"],
            )
        )
    return claims


async def record_results(conn: Connection, results: Sequence[PushResult]) -> int:
    """Record pushes made under a lease still held; returns how many were recorded."""
    if not results:
        return 0
    status = await conn.execute(
        RECORD_RESULTS,
        [r.claim.queue_customer_id for r in results],
        [r.claim.lease for r in results],
        [r.claim.version for r in results],
        [r.ok for r in results],
        [r.retry_in for r in results],
        [r.error for r in results],
        [r.claim.due for r in results],
    )
    return _row_count(status)


async def release_leases(conn: Connection, claims: Sequence[Claim]) -> None:
    """Give back leases of rows not pushed (shutdown), so another process takes them."""
    if claims:
        await conn.execute(
            RELEASE_LEASES, [c.queue_customer_id for c in claims], [c.lease for c in claims]
        )


async def pending_stats(conn: Connection) -> tuple[int, float]:
    """(pending rows, seconds the longest-waiting one has waited)."""
    record = await conn.fetchrow(PENDING_STATS)
    assert record is not None
    return int(record["pending"]), float(record["oldest_age"])


async def requeue_customer(conn: Connection, queue_customer_id: str) -> dict[str, Any] | None:
    """Queue a push of the customer's row; the row as pushed, or None if there is none."""
    record = await conn.fetchrow(REQUEUE_CUSTOMER, queue_customer_id)
    return dict(record) if record is not None else None


async def requeue_batch(conn: Connection, after: str, limit: int) -> tuple[str | None, int]:
    """Queue a push of up to `limit` rows after the id `after`, in key order; returns the
    last id re-queued (None when none was) and how many."""
    record = await conn.fetchrow(REQUEUE_BATCH, after, limit)
    assert record is not None
    return record["last"], int(record["rows"])


def _row_count(status: str) -> int:
    """Rows affected, from a command tag such as `UPDATE 3`."""
    return int(status.rsplit(" ", 1)[-1])
